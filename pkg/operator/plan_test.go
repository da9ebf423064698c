package operator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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
			Reported: version, Committed: true,
			Labels: map[string]string{"pool": map[bool]string{true: "a", false: "b"}[i%2 == 0]}})
	}
	return out
}

func claimed(n Node, c Claim) Node { n.Claim = &c; return n }

// staged is in with every node reporting the test spec's image staged:
// for tests of what starts when, not of staging.
func staged(in []Node) []Node {
	out := make([]Node, len(in))
	for i, n := range in {
		n.Staged = hash
		out[i] = n
	}
	return out
}

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
			p := Decide(Rollout{Name: "osv", Generation: 1, Spec: tt.spec}, staged(tt.in), now)
			if !reflect.DeepEqual(p.Start, tt.want) && !(len(p.Start) == 0 && len(tt.want) == 0) {
				t.Errorf("Start = %v, want %v (state %s: %s)", p.Start, tt.want, p.State, p.Reason)
			}
		})
	}
}

func TestDecideStatus(t *testing.T) {
	in := []Node{
		{Name: "c", Version: "1.1.0", Arch: "amd64", Ready: true, Reported: "1.1.0", Committed: true},
		claimed(Node{Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true},
			Claim{OSVersion: "osv", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeUpgrading, Since: now.Add(-time.Minute)}),
		{Name: "a", Version: "1.0.0", Arch: "amd64", Ready: true},
		{Name: "d", Version: "1.0.0", Arch: "amd64", Ready: false},
	}
	p := Decide(Rollout{Name: "osv", Generation: 7, Spec: spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](2) })}, staged(in), now)
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
	wantConds := map[string]metav1.ConditionStatus{"Validated": "True", "Progressing": "True", "Complete": "False", "Halted": "False", "Blocked": "False"}
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

func condOf(st kesov1.OSVersionStatus, typ string) metav1.Condition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// TestRollbackAfterSuccessHaltsNotLoops: a node counted Upgraded to the
// target that comes back on the old version (the A/B fallback after a
// "success") halts the rollout naming it, and is never started again for the
// same target: not on the next pass, not after a spec edit; only a resume
// (or another target) lets it go again.
func TestRollbackAfterSuccessHaltsNotLoops(t *testing.T) {
	upgradedClaim := Claim{OSVersion: "osv", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeUpgraded, Generation: 1, Since: now.Add(-time.Hour)}
	back := Node{Name: "a", Version: "1.0.0", Reported: "1.0.0", Committed: true, Arch: "amd64", Ready: true,
		RollbackNote: "1.1.0 -> 1.0.0: k3s exited"}
	other := Node{Name: "b", Version: "1.0.0", Reported: "1.0.0", Committed: true, Arch: "amd64", Ready: true}
	r := Rollout{Name: "osv", Generation: 1, Spec: spec()}

	p := Decide(r, []Node{claimed(back, upgradedClaim), other}, now)
	if p.State != StateHalted || p.Halted == nil || p.Halted.Node != "a" || !p.Halted.Regressed || len(p.Start) != 0 {
		t.Fatalf("after the rollback: state %s halted %+v start %v, want Halted by a (regressed), nothing started", p.State, p.Halted, p.Start)
	}
	if len(p.Regressed) != 1 || p.Regressed[0].Node != "a" {
		t.Errorf("Regressed = %+v, want node a (the applier records it)", p.Regressed)
	}
	for _, want := range []string{"node a", "RolledBackAfterUpgrade", `now runs "1.0.0"`, "k3s exited"} {
		if !strings.Contains(p.Status.Message, want) {
			t.Errorf("status.message %q lacks %q", p.Status.Message, want)
		}
	}
	if c := condOf(p.Status, kesov1.ConditionHalted); c.Status != metav1.ConditionTrue || c.Reason != "RolledBackAfterUpgrade" {
		t.Errorf("Halted condition = %s %s, want True RolledBackAfterUpgrade", c.Status, c.Reason)
	}
	if p.Status.Upgraded != 0 || p.Status.Nodes[0].Phase != kesov1.NodeFailed {
		t.Errorf("upgraded %d, node a %s; want 0 and Failed", p.Status.Upgraded, p.Status.Nodes[0].Phase)
	}

	// The applier records a Failed, Regressed claim (this generation, this
	// resume token).
	failed := upgradedClaim
	failed.Phase, failed.Regressed, failed.Message = kesov1.NodeFailed, true, p.Halted.Reason
	for _, tc := range []struct {
		name    string
		r       Rollout
		claim   Claim
		halted  bool
		startsA bool
	}{
		{"next pass, claim still Upgraded", r, upgradedClaim, true, false},
		{"next pass, claim Failed", r, failed, true, false},
		{"spec edited (generation 2)", Rollout{Name: "osv", Generation: 2, Spec: spec()}, failed, true, false},
		{"spec edited before the claim was rewritten", Rollout{Name: "osv", Generation: 2, Spec: spec()}, upgradedClaim, true, false},
		{"resumed by the admin", Rollout{Name: "osv", Generation: 1, Spec: spec(), Resume: "1"}, failed, false, true},
		{"another target", Rollout{Name: "osv", Generation: 2, Spec: spec(func(s *kesov1.OSVersionSpec) { s.Version = "1.2.0" })}, failed, false, true},
	} {
		p := Decide(tc.r, staged([]Node{claimed(back, tc.claim), other}), now)
		if (p.Halted != nil) != tc.halted {
			t.Errorf("%s: halted %+v, want halted %v", tc.name, p.Halted, tc.halted)
		}
		// Once recorded, the claim keeps the reason: the condition must
		// still say RolledBackAfterUpgrade, not a plain NodeFailed.
		if c := condOf(p.Status, kesov1.ConditionHalted); tc.halted && c.Reason != "RolledBackAfterUpgrade" {
			t.Errorf("%s: Halted condition reason = %s, want RolledBackAfterUpgrade", tc.name, c.Reason)
		}
		startsA := len(p.Start) > 0 && p.Start[0] == "a"
		if startsA != tc.startsA {
			t.Errorf("%s: Start = %v, want node a started: %v", tc.name, p.Start, tc.startsA)
		}
	}
}

// TestTrialIsNotUpgraded: a node on the target whose slot is not committed
// (trial boot) or that does not report is neither counted nor started.
func TestTrialIsNotUpgraded(t *testing.T) {
	trial := Node{Name: "t", Version: "1.1.0", Reported: "1.1.0", Committed: false, Arch: "amd64", Ready: true}
	silent := Node{Name: "u", Version: "1.1.0", Arch: "amd64", Ready: true}
	done := Node{Name: "v", Version: "1.1.0", Reported: "1.1.0", Committed: true, Arch: "amd64", Ready: true}
	p := Decide(Rollout{Name: "osv", Spec: spec(func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](3) })}, []Node{trial, silent, done}, now)
	if p.Status.Upgraded != 1 || len(p.Start) != 0 || p.State == StateComplete {
		t.Errorf("upgraded %d start %v state %s, want 1 (only v), nothing started, not Complete", p.Status.Upgraded, p.Start, p.State)
	}
	if got := p.Status.Nodes[0]; got.Phase != kesov1.NodePending || !strings.Contains(got.Message, "has not committed it") {
		t.Errorf("trial node status = %s %q, want Pending, not committed", got.Phase, got.Message)
	}
}

func TestValidateArchNames(t *testing.T) {
	withKeys := func(keys ...string) kesov1.OSVersionSpec {
		return spec(func(s *kesov1.OSVersionSpec) {
			s.SHA256 = map[string]kesov1.SHA256Sum{}
			for _, k := range keys {
				s.SHA256[k] = hash
			}
		})
	}
	mixed := []Node{{Name: "x86", Arch: "amd64"}, {Name: "pi4", Arch: "arm64"}, {Name: "pi2", Arch: "arm"}}
	tests := []struct {
		name string
		spec kesov1.OSVersionSpec
		want string // "" = valid
	}{
		{"keso names for a mixed fleet", withKeys("amd64", "arm64", "armv7"), ""},
		{"arm key", withKeys("amd64", "arm64", "arm"), `sha256 key "arm": use armv7, keso's name for 32-bit ARM`},
		{"unknown key", withKeys("amd64", "arm64", "armv7", "riscv64"), `sha256 key "riscv64": want a keso architecture name: amd64, arm64 or armv7`},
		{"arm node needs the armv7 entry", withKeys("amd64", "arm64"), "sha256 has no entry for arch armv7 of selected nodes"},
		{"negative maxRate", func() kesov1.OSVersionSpec {
			s := withKeys("amd64", "arm64", "armv7")
			s.MaxRate = ptr.To(resource.MustParse("-56Ki"))
			return s
		}(), "maxRate -56Ki: want bytes a second"},
	}
	for _, tt := range tests {
		err := Validate(tt.spec, mixed)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && !strings.Contains(got, tt.want)) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestKesoArch(t *testing.T) {
	for in, want := range map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armv7", "armv7": "armv7"} {
		if got := KesoArch(in); got != want {
			t.Errorf("KesoArch(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecideBlocked: a node whose Job the API server refused shows the
// reason in its status, the Blocked condition and status.message.
func TestDecideBlocked(t *testing.T) {
	msg := `JobRefused: the API server refused the upgrade Job: Job.batch "x" is invalid: spec.template.spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy`
	in := []Node{claimed(Node{Name: "a", Version: "1.0.0", Arch: "amd64", Ready: true, Unschedulable: true},
		Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeDraining, Since: now.Add(-time.Minute), Blocked: now.Add(-30 * time.Second), Message: msg})}
	p := Decide(Rollout{Name: "osv", Spec: spec()}, in, now)
	c := condOf(p.Status, kesov1.ConditionBlocked)
	if c.Status != metav1.ConditionTrue || c.Reason != "JobRefused" || !strings.Contains(c.Message, "node a: "+msg) {
		t.Errorf("Blocked condition = %s %s %q, want True JobRefused naming node a and the reason", c.Status, c.Reason, c.Message)
	}
	if got := p.Status.Nodes[0]; got.Phase != kesov1.NodeDraining || got.Message != msg {
		t.Errorf("node status = %s %q, want Draining with the refusal", got.Phase, got.Message)
	}
	if !strings.Contains(p.Status.Message, "node a blocked: JobRefused") {
		t.Errorf("status.message = %q, want it to name node a and JobRefused", p.Status.Message)
	}
}

// TestHaltShowsLateRollbackNote: the kubelet's osImage and the node's own
// report (keso.io/rollback) are separate writes, so the operator may record
// a failure before the node says why. The halt reason shown (condition
// Halted, status.message, the node's status) then adds the note, once, and
// only a note about rolling back from the rollout's target.
func TestHaltShowsLateRollbackNote(t *testing.T) {
	failed := Claim{OSVersion: "osv", Target: "1.1.0", From: "1.0.0", Phase: kesov1.NodeFailed, Generation: 1,
		Message: `RolledBack: node rebooted and came back on "1.0.0", not 1.1.0`}
	back := Node{Name: "a", Version: "1.0.0", Reported: "1.0.0", Committed: true, Arch: "amd64", Ready: true}
	const note = "1.1.0 -> 1.0.0: slot b (1.1.0) did not become healthy in 3 tries"
	withNote := failed
	withNote.Message += " (" + RollbackAnnotation + ": " + note + ")"
	tests := []struct {
		name  string
		claim Claim
		note  string
		want  string
	}{
		{"no note yet", failed, "", failed.Message},
		{"note arrived later", failed, note, failed.Message + "; " + RollbackAnnotation + ": " + note},
		{"note already recorded", withNote, note, withNote.Message},
		{"note about another version", failed, "1.0.5 -> 1.0.0: k3s exited", failed.Message},
		{"v-prefixed note", failed, "v1.1.0 -> v1.0.0: k3s exited", failed.Message + "; " + RollbackAnnotation + ": v1.1.0 -> v1.0.0: k3s exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := back
			n.RollbackNote = tt.note
			p := Decide(Rollout{Name: "osv", Generation: 1, Spec: spec()}, []Node{claimed(n, tt.claim)}, now)
			if p.Halted == nil {
				t.Fatalf("not halted; state %s", p.State)
			}
			if got, want := p.Halted.Reason, tt.want; got != want {
				t.Errorf("halt reason = %q, want %q", got, want)
			}
			if got, want := p.Status.Message, "node a: "+tt.want; got != want {
				t.Errorf("status.message = %q, want %q", got, want)
			}
			if got, want := condOf(p.Status, kesov1.ConditionHalted).Message, "node a: "+tt.want; got != want {
				t.Errorf("Halted condition message = %q, want %q", got, want)
			}
			if got, want := p.Status.Nodes[0].Message, tt.want; got != want {
				t.Errorf("node status message = %q, want %q", got, want)
			}
		})
	}
}

// TestDecideStagesFirst: stage by day, switch by night. Every selected
// node due for the target gets a stage Job at once, whatever the window
// and the concurrency; a node starts (cordon, drain, the switch Job) only
// once staged, or once its stage Job ended without staging (the upgrade
// Job then fetches what is missing).
func TestDecideStagesFirst(t *testing.T) {
	closed := func(s *kesov1.OSVersionSpec) { s.Window = &kesov1.MaintenanceWindow{Start: "01:00", End: "05:00"} }
	node := func(name string, mod func(*Node)) Node {
		n := Node{Name: name, Version: "1.0.0", Arch: "amd64", Ready: true, Reported: "1.0.0", Committed: true}
		if mod != nil {
			mod(&n)
		}
		return n
	}
	staged := func(n *Node) { n.Staged = hash }
	running := func(n *Node) { n.StageJob = JobState{Exists: true, HasPods: true, Created: now.Add(-time.Hour)} }
	tests := []struct {
		name                  string
		spec                  kesov1.OSVersionSpec
		in                    []Node
		stage, staging, start []string
		state                 string
	}{
		{"nothing staged: all stage at once, none starts", spec(), []Node{node("a", nil), node("b", nil), node("c", nil)},
			[]string{"a", "b", "c"}, nil, nil, StateProgressing},
		{"stage Job running: wait", spec(), []Node{node("a", running)}, nil, []string{"a"}, nil, StateProgressing},
		{"staged: starts", spec(), []Node{node("a", staged), node("b", running)}, nil, []string{"b"}, []string{"a"}, StateProgressing},
		{"staged another image: stages again", spec(), []Node{node("a", func(n *Node) { n.Staged = strings.Repeat("e", 64) })},
			[]string{"a"}, nil, nil, StateProgressing},
		{"stage Job failed: starts (its upgrade fetches)", spec(), []Node{node("a", func(n *Node) { n.StageJob = JobState{Exists: true, Failed: true} })},
			nil, nil, []string{"a"}, StateProgressing},
		{"stage Job succeeded, report not yet seen: starts", spec(), []Node{node("a", func(n *Node) { n.StageJob = JobState{Exists: true, Succeeded: true, HasPods: true} })},
			nil, nil, []string{"a"}, StateProgressing},
		{"stage Job without a pod for long: starts", spec(), []Node{node("a", func(n *Node) { n.StageJob = JobState{Exists: true, Created: now.Add(-time.Hour)} })},
			nil, nil, []string{"a"}, StateProgressing},
		{"stage Job without a pod, young: waits", spec(), []Node{node("a", func(n *Node) { n.StageJob = JobState{Exists: true, Created: now.Add(-time.Second)} })},
			nil, []string{"a"}, nil, StateProgressing},
		{"outside the window: stages, starts nothing", spec(closed), []Node{node("a", nil), node("b", staged), node("c", running)},
			[]string{"a"}, []string{"c"}, nil, StateWaiting},
		{"paused: no stage Jobs", spec(func(s *kesov1.OSVersionSpec) { s.Paused = true }), []Node{node("a", nil)}, nil, nil, nil, StatePaused},
		{"halted: no stage Jobs", spec(), []Node{node("a", nil), claimed(node("bad", nil),
			Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeFailed, Generation: 1})}, nil, nil, nil, StateHalted},
		{"invalid: no stage Jobs", spec(), []Node{node("a", nil), node("pi", func(n *Node) { n.Arch = "arm64" })}, nil, nil, nil, StateInvalid},
		{"in flight or on the target: not staged", spec(), []Node{
			claimed(node("a", nil), Claim{OSVersion: "osv", Target: "1.1.0", Phase: kesov1.NodeUpgrading}),
			node("b", func(n *Node) { n.Version, n.Reported = "1.1.0", "1.1.0" }),
			node("c", func(n *Node) { n.Ready = false })}, nil, nil, nil, StateProgressing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(Rollout{Name: "osv", Generation: 1, Spec: tt.spec}, tt.in, now)
			got := fmt.Sprintf("stage %v staging %v start %v state %s", p.Stage, p.Staging, p.Start, p.State)
			want := fmt.Sprintf("stage %v staging %v start %v state %s", tt.stage, tt.staging, tt.start, tt.state)
			if got != want {
				t.Errorf("got %s\nwant %s (%s)", got, want, p.Reason)
			}
		})
	}
}

// TestDecideStageStatus: each node's staging in the status (staged,
// bytes fetched of bytes needed, what it waits for), the count and the
// sum for kubectl's columns.
func TestDecideStageStatus(t *testing.T) {
	s := spec(func(s *kesov1.OSVersionSpec) { s.Window = &kesov1.MaintenanceWindow{Start: "01:00", End: "05:00"} })
	in := []Node{
		{Name: "a", Version: "1.0.0", Arch: "amd64", Ready: true, Staged: hash, Progress: Download{SHA256: hash, Fetched: 5 << 20, Needed: 5 << 20}},
		{Name: "b", Version: "1.0.0", Arch: "amd64", Ready: true, Progress: Download{SHA256: hash, Fetched: 1 << 20, Needed: 4 << 20},
			StageJob: JobState{Exists: true, HasPods: true}},
		{Name: "c", Version: "1.0.0", Arch: "amd64", Ready: true, Progress: Download{SHA256: strings.Repeat("e", 64), Fetched: 7, Needed: 9},
			StageJob: JobState{Exists: true, Failed: true, Message: "BackoffLimitExceeded Job has reached the specified backoff limit"}},
		{Name: "d", Version: "1.1.0", Reported: "1.1.0", Committed: true, Arch: "amd64", Ready: true, Progress: Download{SHA256: hash, Fetched: 3, Needed: 3}},
		{Name: "e", Version: "1.0.0", Arch: "amd64", Ready: true, Progress: Download{SHA256: hash, Fetched: 2 << 20, Needed: 2 << 20},
			StageJob: JobState{Exists: true, HasPods: true}},
	}
	st := Decide(Rollout{Name: "osv", Spec: s}, in, now).Status
	type row struct {
		Phase           kesov1.NodePhase
		Staged          bool
		Fetched, Needed int64
		Message         string
	}
	want := []row{
		{kesov1.NodePending, true, 5 << 20, 5 << 20, "staged; switches in the maintenance window"},
		{kesov1.NodePending, false, 1 << 20, 4 << 20, "staging: 1.0Mi of 4.0Mi fetched"},
		{kesov1.NodePending, false, 0, 0, "staging failed (BackoffLimitExceeded Job has reached the specified backoff limit); its upgrade fetches what is missing"},
		{kesov1.NodeUpgraded, false, 0, 0, ""},
		{kesov1.NodePending, false, 2 << 20, 2 << 20, "staging: 2.0Mi fetched; writing and checking the inactive slot"},
	}
	for i, n := range st.Nodes {
		if got := (row{n.Phase, n.Staged, n.Fetched, n.Needed, n.Message}); got != want[i] {
			t.Errorf("node %s: %+v, want %+v", n.Name, got, want[i])
		}
	}
	if st.Staged != 1 || st.Fetched != "8.0Mi/11.0Mi" {
		t.Errorf("status staged %d fetched %q, want 1 and 8.0Mi/11.0Mi", st.Staged, st.Fetched)
	}
}
