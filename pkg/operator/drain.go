package operator

import (
	"fmt"
	"sort"
	"strings"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DrainPlan says which pods on a node to evict and which block the drain.
type DrainPlan struct {
	Evict    []string // namespace/name
	Blockers []string // namespace/name: reason
	Pending  int      // pods still on the node that will be evicted or are terminating
}

// Done reports whether the node is drained: nothing left to evict, nothing
// blocking, nothing terminating.
func (d DrainPlan) Done() bool { return d.Pending == 0 && len(d.Blockers) == 0 }

// Summary is a one-line description for messages.
func (d DrainPlan) Summary() string {
	s := fmt.Sprintf("%d pods to evict", d.Pending)
	if len(d.Blockers) > 0 {
		s += "; blocked by " + strings.Join(d.Blockers, ", ")
	}
	return s
}

// PlanDrain decides, like `kubectl drain`, what to do with the pods on a
// node. Pods of the upgrade Job itself, mirror (static) pods and finished
// pods are left alone; DaemonSet pods are left alone when ignoreDaemonSets
// (the default) and block otherwise; pods with emptyDir volumes block unless
// deleteEmptyDirData; pods without a managing controller block unless force.
// Pods already terminating count as pending but are not evicted again.
func PlanDrain(pods []corev1.Pod, d kesov1.DrainSpec) DrainPlan {
	var p DrainPlan
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name
	})
	ignoreDS := d.IgnoreDaemonSets == nil || *d.IgnoreDaemonSets
	for i := range pods {
		pod := &pods[i]
		id := pod.Namespace + "/" + pod.Name
		if pod.Labels[JobLabel] != "" {
			continue
		}
		if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			continue
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		ctrl := metav1.GetControllerOf(pod)
		if ctrl != nil && ctrl.Kind == "DaemonSet" {
			if ignoreDS {
				continue
			}
			p.Blockers = append(p.Blockers, id+": DaemonSet pod (set drain.ignoreDaemonSets)")
			continue
		}
		if pod.DeletionTimestamp != nil {
			p.Pending++
			continue
		}
		if ctrl == nil && !d.Force {
			p.Blockers = append(p.Blockers, id+": not managed by a controller (set drain.force)")
			continue
		}
		if hasEmptyDir(pod) && !d.DeleteEmptyDirData {
			p.Blockers = append(p.Blockers, id+": uses emptyDir (set drain.deleteEmptyDirData)")
			continue
		}
		p.Evict = append(p.Evict, id)
		p.Pending++
	}
	return p
}

func hasEmptyDir(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil {
			return true
		}
	}
	return false
}
