package operator

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"github.com/keso-os/keso/pkg/operator"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// fleet builds n nodes like a store fleet mid-rollout: a third upgraded,
// concurrency-many in flight (with claim annotations), the rest pending.
func fleet(n, inFlight int) []*corev1.Node {
	var out []*corev1.Node
	for i := 0; i < n; i++ {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("store-%04d", i), Labels: map[string]string{
				"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": fmt.Sprintf("store-%04d", i), "keso.io/fleet": "stores",
			}, Annotations: map[string]string{}},
			Status: corev1.NodeStatus{
				NodeInfo:   corev1.NodeSystemInfo{OSImage: "keso 1.0.0", Architecture: "amd64", BootID: fmt.Sprintf("boot-%d", i)},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
		switch {
		case i < n/3:
			node.Status.NodeInfo.OSImage = "keso 1.1.0"
			c := operator.Claim{OSVersion: "stores", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeUpgraded, Since: now, Started: now}
			node.Annotations[operator.ClaimAnnotation] = c.Encode()
		case i < n/3+inFlight:
			node.Spec.Unschedulable = true
			c := operator.Claim{OSVersion: "stores", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeUpgrading, Since: now, Started: now, BootID: "x", Cordoned: true}
			node.Annotations[operator.ClaimAnnotation] = c.Encode()
		}
		out = append(out, node)
	}
	return out
}

func osv() *kesov1.OSVersion {
	return &kesov1.OSVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "stores", Generation: 3},
		Spec: kesov1.OSVersionSpec{
			Version: "1.1.0", Image: "https://example.org/keso-{version}-{arch}.squashfs",
			SHA256:       map[string]kesov1.SHA256Sum{"amd64": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"keso.io/fleet": "stores"}},
			Concurrency:  ptr.To[int32](10),
			Window:       &kesov1.MaintenanceWindow{Start: "01:00", End: "05:00", TimeZone: "Europe/Berlin"},
		},
	}
}

// BenchmarkReconcile1000 is one reconcile pass's computation over 1,000
// nodes: node views and claims from the cached Nodes, selection, the next
// nodes to start, the status, and the comparison with the old status that
// decides whether to write it.
func BenchmarkReconcile1000(b *testing.B) {
	nodes, o := fleet(1000, 10), osv()
	prev := operator.DecideNodes(o, nodes, now).Status
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := operator.DecideNodes(o, nodes, now)
		if len(p.Status.Nodes) != 1000 || !equality.Semantic.DeepEqual(p.Status, prev) {
			b.Fatal("unexpected plan")
		}
	}
}

// BenchmarkDecide1000 is the pure planner alone (selection + status) on
// prepared node views.
func BenchmarkDecide1000(b *testing.B) {
	o := osv()
	views := make([]operator.Node, 0, 1000)
	for _, n := range fleet(1000, 10) {
		c, _ := operator.ParseClaim(n.Annotations)
		views = append(views, operator.Node{Name: n.Name, Labels: n.Labels, Version: operator.VersionFromOSImage(n.Status.NodeInfo.OSImage),
			Arch: "amd64", Ready: true, Unschedulable: n.Spec.Unschedulable, BootID: n.Status.NodeInfo.BootID, Claim: c})
	}
	r := operator.Rollout{Name: o.Name, Generation: o.Generation, Spec: o.Spec}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := operator.Decide(r, views, now); len(p.Start) != 0 && p.State == "" {
			b.Fatal("unexpected plan")
		}
	}
}

// BenchmarkCacheMemory1000 reports the heap held by 1,000 Node objects as
// the informer caches them plus one status with 1,000 entries: the
// operator's steady-state memory beyond its fixed baseline.
func BenchmarkCacheMemory1000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		nodes := fleet(1000, 10)
		st := operator.DecideNodes(osv(), nodes, now).Status
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB-retained")
		runtime.KeepAlive(nodes)
		runtime.KeepAlive(st)
	}
}
