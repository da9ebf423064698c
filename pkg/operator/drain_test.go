package operator

import (
	"reflect"
	"testing"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pod(name, ownerKind string, mod ...func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if ownerKind != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: ownerKind, Name: "o", Controller: ptr.To(true)}}
	}
	for _, m := range mod {
		m(&p)
	}
	return p
}

func TestPlanDrain(t *testing.T) {
	emptyDir := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	pods := []corev1.Pod{
		pod("web", "ReplicaSet"),
		pod("ds", "DaemonSet"),
		pod("bare", ""),
		pod("cache", "ReplicaSet", emptyDir),
		pod("mirror", "", func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} }),
		pod("done", "Job", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("upgrader", "Job", func(p *corev1.Pod) { p.Labels = map[string]string{JobLabel: "n"} }),
		pod("leaving", "ReplicaSet", func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }),
	}
	tests := []struct {
		name     string
		d        kesov1.DrainSpec
		evict    []string
		blockers int
		pending  int
	}{
		{"defaults", kesov1.DrainSpec{}, []string{"ns/web"}, 2, 2},
		{"force + emptyDir", kesov1.DrainSpec{Force: true, DeleteEmptyDirData: true}, []string{"ns/bare", "ns/cache", "ns/web"}, 0, 4},
		{"daemonsets not ignored", kesov1.DrainSpec{IgnoreDaemonSets: ptr.To(false), Force: true, DeleteEmptyDirData: true}, []string{"ns/bare", "ns/cache", "ns/web"}, 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanDrain(append([]corev1.Pod(nil), pods...), tt.d)
			if !reflect.DeepEqual(got.Evict, tt.evict) || len(got.Blockers) != tt.blockers || got.Pending != tt.pending {
				t.Errorf("PlanDrain = evict %v blockers %v pending %d, want %v %d %d", got.Evict, got.Blockers, got.Pending, tt.evict, tt.blockers, tt.pending)
			}
			if got.Done() {
				t.Errorf("Done() = true with pods pending")
			}
		})
	}
	if d := PlanDrain([]corev1.Pod{pods[1], pods[4], pods[5], pods[6]}, kesov1.DrainSpec{}); !d.Done() {
		t.Errorf("only DaemonSet, mirror, finished and upgrader pods: Done() = false (%+v), want true", d)
	}
}
