package operator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func spec(mod ...func(*kesov1.OSVersionSpec)) kesov1.OSVersionSpec {
	s := kesov1.OSVersionSpec{
		Version: "1.1.0",
		Image:   "https://example.org/keso-{version}-{arch}.squashfs",
		SHA256:  map[string]kesov1.SHA256Sum{"amd64": hash},
	}
	for _, m := range mod {
		m(&s)
	}
	return s
}

func nodes(n int, version string) []Node {
	var out []Node
	for i := n - 1; i >= 0; i-- { // reverse order: the planner must sort
		out = append(out, Node{Name: fmt.Sprintf("node-%03d", i), Version: version, Arch: "amd64", Ready: true,
			Labels: map[string]string{"pool": map[bool]string{true: "a", false: "b"}[i%2 == 0]}})
	}
	return out
}

func claimed(n Node, c Claim) Node { n.Claim = &c; return n }

func TestDecideStartsInNameOrderUpToConcurrency(t *testing.T) {
	tests := []struct {
		name string
		spec kesov1.OSVersionSpec
		in   []Node
		want []string
	}{
		{"default concurrency 1", spec(), nodes(5, "1.0.0"), []string{"node-000"}},
		{"concurrency 3", spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](3) }), nodes(5, "1.0.0"),
			[]string{"node-000", "node-001", "node-002"}},
		{"selector", spec(func(s *kesov1.OSVersionSpec) {
			s.Concurrency = ptr.To[int32](2)
			s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "b"}}
		}), nodes(5, "1.0.0"), []string{"node-001", "node-003"}},
		{"skips upgraded and v-prefix equal", spec(func(s *kesov1.OSVersionSpec) { s.Version = "v1.1.0"; s.Concurrency = ptr.To[int32](2) }),
			append(nodes(2, "1.1.0"), Node{Name: "node-x", Version: "1.0.0", Arch: "amd64", Ready: true}), []string{"node-x"}},
		{"skips nodes not running keso", spec(), []Node{{Name: "a", Arch: "amd64", Ready: true}, {Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true}}, []string{"b"}},
		{"skips NotReady", spec(), []Node{{Name: "a", Version: "1.0.0", Arch: "amd64"}, {Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true}}, []string{"b"}},
		{"in flight uses the slot", spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](2) }),
			append(nodes(3, "1.0.0")[:2], claimed(nodes(3, "1.0.0")[2], Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeUpgrading})),
			[]string{"node-001"}},
		{"another OSVersion's in-flight node is skipped", spec(),
			[]Node{claimed(Node{Name: "a", Version: "1.0.0", Arch: "amd64", Ready: true}, Claim{OSVersion: "other", Phase: kesov1.NodeDraining}),
				{Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true}}, []string{"b"}},
		{"maxUnavailable 40% of 5 = 2, one NotReady", spec(func(s *kesov1.OSVersionSpec) { s.MaxUnavailable = ptr.To(intstr.FromString("40%")) }),
			append(nodes(4, "1.0.0"), Node{Name: "z", Version: "1.0.0", Arch: "amd64"}), []string{"node-000"}},
		{"paused", spec(func(s *kesov1.OSVersionSpec) { s.Paused = true }), nodes(3, "1.0.0"), nil},
		{"outside window", spec(func(s *kesov1.OSVersionSpec) {
			s.Window = &kesov1.MaintenanceWindow{Start: "01:00", End: "05:00"}
		}), nodes(3, "1.0.0"), nil},
		{"inside window", spec(func(s *kesov1.OSVersionSpec) {
			s.Window = &kesov1.MaintenanceWindow{Start: "11:00", End: "13:00"}
		}), nodes(3, "1.0.0"), []string{"node-000"}},
		{"missing sha256 for arm64", spec(), append(nodes(1, "1.0.0"), Node{Name: "pi", Arch: "arm64", Version: "1.0.0", Ready: true}), nil},
		{"halted by a failed node of this generation", spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](5) }),
			append(nodes(3, "1.0.0"), claimed(Node{Name: "bad", Version: "1.0.0", Arch: "amd64", Ready: true},
				Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeFailed, Generation: 1})), nil},
		{"failure of an older generation does not halt", spec(),
			[]Node{claimed(Node{Name: "bad", Version: "1.0.0", Arch: "amd64", Ready: true},
				Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeFailed, Generation: 0})}, []string{"bad"}},
		{"resume token clears the halt", spec(),
			[]Node{claimed(Node{Name: "bad", Version: "1.0.0", Arch: "amd64", Ready: true},
				Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeFailed, Generation: 1, Resume: "old"})}, []string{"bad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(Rollout{Name: "osv", Generation: 1, Spec: tt.spec}, tt.in, now)
			if !reflect.DeepEqual(p.Start, tt.want) && !(len(p.Start) == 0 && len(tt.want) == 0) {
				t.Errorf("Start = %v, want %v (state %s: %s)", p.Start, tt.want, p.State, p.Reason)
			}
		})
	}
}

func TestDecideStatus(t *testing.T) {
	in := []Node{
		{Name: "c", Version: "1.1.0", Arch: "amd64", Ready: true},
		claimed(Node{Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true},
			Claim{OSVersion: "osv", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeUpgrading, Since: now.Add(-time.Minute)}),
		{Name: "a", Version: "1.0.0", Arch: "amd64", Ready: true},
		{Name: "d", Version: "1.0.0", Arch: "amd64", Ready: false},
	}
	p := Decide(Rollout{Name: "osv", Generation: 7, Spec: spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](2) })}, in, now)
	st := p.Status
	if st.Upgraded != 1 || st.Total != 4 || st.ObservedGeneration != 7 || st.State != StateProgressing {
		t.Errorf("counts = upgraded %d total %d gen %d state %s, want 1 4 7 Progressing", st.Upgraded, st.Total, st.ObservedGeneration, st.State)
	}
	var got []string
	for _, n := range st.Nodes {
		got = append(got, n.Name+"="+string(n.Phase))
	}
	want := []string{"a=Draining", "b=Upgrading", "c=Upgraded", "d=Pending"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("node phases = %v, want %v", got, want)
	}
	if st.Nodes[1].FromVersion != "1.0.0" || !st.Nodes[1].LastTransitionTime.Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("node b = %+v, want from 1.0.0 since 1m ago", st.Nodes[1])
	}
	if st.Nodes[3].Message != "node is not Ready" {
		t.Errorf("node d message = %q, want %q", st.Nodes[3].Message, "node is not Ready")
	}
	conds := map[string]metav1.ConditionStatus{}
	for _, c := range st.Conditions {
		conds[c.Type] = c.Status
	}
	wantConds := map[string]metav1.ConditionStatus{"Validated": "True", "Progressing": "True", "Complete": "False", "Halted": "False"}
	if !reflect.DeepEqual(conds, wantConds) {
		t.Errorf("conditions = %v, want %v", conds, wantConds)
	}
}

func TestDecideCompleteAndHalted(t *testing.T) {
	p := Decide(Rollout{Name: "osv", Spec: spec()}, nodes(3, "1.1.0"), now)
	if p.State != StateComplete || p.Status.Upgraded != 3 || len(p.Start) != 0 {
		t.Errorf("all upgraded: state %s upgraded %d start %v, want Complete 3 []", p.State, p.Status.Upgraded, p.Start)
	}
	in := append(nodes(2, "1.0.0"), claimed(Node{Name: "bad", Version: "1.0.0", Arch: "amd64", Ready: true},
		Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeFailed, Message: "RolledBack: x", Generation: 2}))
	p = Decide(Rollout{Name: "osv", Generation: 2, Spec: spec()}, in, now)
	if p.State != StateHalted || p.Halted == nil || p.Halted.Node != "bad" || !strings.Contains(p.Reason, "RolledBack") {
		t.Errorf("halted: state %s halted %+v reason %q, want Halted by bad with RolledBack", p.State, p.Halted, p.Reason)
	}
	var halted metav1.Condition
	for _, c := range p.Status.Conditions {
		if c.Type == kesov1.ConditionHalted {
			halted = c
		}
	}
	if halted.Status != metav1.ConditionTrue || !strings.Contains(halted.Message, "node bad") {
		t.Errorf("Halted condition = %+v, want True naming node bad", halted)
	}
}

func TestDecideDeterministic(t *testing.T) {
	in := nodes(50, "1.0.0")
	s := spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](4) })
	a := Decide(Rollout{Name: "osv", Spec: s}, in, now)
	for i := 0; i < 10; i++ {
		b := Decide(Rollout{Name: "osv", Spec: s}, in, now)
		if !reflect.DeepEqual(a.Start, b.Start) || !reflect.DeepEqual(a.Status, b.Status) {
			t.Fatal("Decide gave different plans for the same input")
		}
	}
}

func TestVersionFromOSImage(t *testing.T) {
	for in, want := range map[string]string{"keso 1.2.3": "1.2.3", "keso v1.2.3 (edge)": "v1.2.3", "Debian GNU/Linux 12 (bookworm)": "", "": ""} {
		if got := VersionFromOSImage(in); got != want {
			t.Errorf("VersionFromOSImage(%q) = %q, want %q", in, got, want)
		}
	}
}
