package operator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Node is what the planner needs to know about a node.
type Node struct {
	Name          string
	Labels        map[string]string
	Version       string // from status.nodeInfo.osImage; "" when not keso
	Arch          string // status.nodeInfo.architecture (amd64, arm64, arm); KesoArch maps it
	Ready         bool
	Unschedulable bool
	BootID        string
	Reported      string // the node's own keso.io/version annotation
	Committed     bool   // keso.io/committed == "true"
	RollbackNote  string // keso.io/rollback
	Claim         *Claim // nil when the node carries none
	ClaimErr      error  // the annotation could not be parsed
	// Staged is the sha256 of the image staged in the node's inactive
	// slot (keso.io/staged), "" when none.
	Staged string
	// Progress is the node's upgrade download (keso.io/stage-progress):
	// the image's sha256 and the bytes fetched of those needed.
	Progress Download
	// StageJob is this rollout's stage Job for the node (the reconciler
	// fills it in; zero when there is none).
	StageJob JobState
}

// Download is a node's report of its upgrade download.
type Download struct {
	SHA256          string
	Fetched, Needed int64
}

// Rollout is one OSVersion, reduced to what the planner needs.
type Rollout struct {
	Name       string
	Generation int64
	Spec       kesov1.OSVersionSpec
	Resume     string // the keso.io/resume annotation
}

// Plan is the planner's decision for one OSVersion at one moment.
type Plan struct {
	// Selected are the selected nodes, sorted by name.
	Selected []Node
	// Start are the nodes to claim now, in order.
	Start []string
	// InFlight are the nodes this rollout is upgrading.
	InFlight []string
	// Stage are the nodes to create a stage Job for now: selected, due
	// for the target, not staged and without one (stage by day: at any
	// hour, whatever the window and the concurrency).
	Stage []string
	// Staging are the nodes whose stage Job runs; they start once staged.
	Staging []string
	// Halted is set when a node failed for this spec generation and resume
	// token, or came back on another version after it was counted
	// Upgraded to this target: its name and the reason.
	Halted *Halt
	// Regressed are the nodes counted Upgraded to this target (by their
	// claim) that now run another version; the applier records each as a
	// Failed claim. They are never started again for this target without a
	// resume.
	Regressed []Halt
	// Blocked are in-flight nodes whose upgrade Job cannot run (refused, or
	// no pod), with the reason; they are given back after JobStartTimeout.
	Blocked []Halt
	// State summarises the plan for the status and `kubectl get`.
	State string
	// Reason says why nothing starts (paused, window, halted), or "".
	Reason string
	// NextWindow is when the maintenance window opens next (zero when open
	// or when there is none).
	NextWindow time.Time
	// Status is the status the OSVersion should carry.
	Status kesov1.OSVersionStatus
}

// Halt names the node that halted a rollout and why.
type Halt struct {
	Node, Reason string
	// Regressed is set when the node had been counted Upgraded to the
	// target and now runs another version (it is not a Failed claim).
	Regressed bool
}

// States of a rollout (status.state).
const (
	StateInvalid     = "Invalid"
	StatePaused      = "Paused"
	StateWaiting     = "Waiting"
	StateProgressing = "Progressing"
	StateHalted      = "Halted"
	StateComplete    = "Complete"
)

// Validate checks what the schema cannot: the selector, the window, the
// checksums for every architecture among the selected nodes.
func Validate(spec kesov1.OSVersionSpec, selected []Node) error {
	if _, err := Selector(spec.NodeSelector); err != nil {
		return err
	}
	if _, err := ParseWindow(spec.Window); err != nil {
		return err
	}
	if spec.MaxUnavailable != nil {
		if _, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, 100, false); err != nil {
			return fmt.Errorf("maxUnavailable: %w", err)
		}
	}
	if spec.MaxRate != nil && spec.MaxRate.Sign() < 0 {
		return fmt.Errorf("maxRate %s: want bytes a second, 0 or more (56Ki, 1M)", spec.MaxRate)
	}
	keys := make([]string, 0, len(spec.SHA256))
	for k := range spec.SHA256 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkArchKey(k); err != nil {
			return err
		}
	}
	var missing []string
	seen := map[string]bool{}
	for _, n := range selected {
		arch := KesoArch(n.Arch)
		if arch == "" || seen[arch] {
			continue
		}
		seen[arch] = true
		if spec.SHA256[arch] == "" {
			missing = append(missing, arch)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("sha256 has no entry for arch %s of selected nodes (keys are keso's arch names: amd64, arm64, armv7)", strings.Join(missing, ", "))
	}
	return nil
}

// Selector converts the spec's node selector; nil selects everything.
func Selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, fmt.Errorf("nodeSelector: %w", err)
	}
	return sel, nil
}

// Slots is how many more nodes may start now.
func Slots(spec kesov1.OSVersionSpec, selected []Node, inFlight int) int {
	if spec.MaxUnavailable == nil {
		c := 1
		if spec.Concurrency != nil && *spec.Concurrency > 0 {
			c = int(*spec.Concurrency)
		}
		return max(c-inFlight, 0)
	}
	limit, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, len(selected), false)
	if err != nil {
		return 0
	}
	limit = max(limit, 1)
	unavailable := 0
	for _, n := range selected {
		if !n.Ready || n.Unschedulable || n.Claim.InFlight() {
			unavailable++
		}
	}
	return max(limit-unavailable, 0)
}

// Decide computes the plan for rollout r over all nodes at time now. It is
// pure: the same inputs give the same plan. Nodes start in name order.
func Decide(r Rollout, nodes []Node, now time.Time) Plan {
	var p Plan
	sel, selErr := Selector(r.Spec.NodeSelector)
	if selErr == nil {
		for _, n := range nodes {
			if sel.Matches(labels.Set(n.Labels)) {
				p.Selected = append(p.Selected, n)
			}
		}
	}
	sort.Slice(p.Selected, func(i, j int) bool { return p.Selected[i].Name < p.Selected[j].Name })

	validErr := selErr
	if validErr == nil {
		validErr = Validate(r.Spec, p.Selected)
	}

	var eligible []string
	for _, n := range p.Selected {
		c := n.Claim
		mine := c != nil && c.OSVersion == r.Name
		switch {
		case mine && c.InFlight():
			p.InFlight = append(p.InFlight, n.Name)
			if !c.Blocked.IsZero() {
				p.Blocked = append(p.Blocked, Halt{Node: n.Name, Reason: c.Message})
			}
		case c.halts(r):
			if p.Halted == nil {
				p.Halted = &Halt{Node: n.Name, Reason: failReason(c, n), Regressed: c.Regressed}
			}
		case regressed(r, n):
			h := Halt{Node: n.Name, Reason: regressReason(n, r.Spec.Version), Regressed: true}
			p.Regressed = append(p.Regressed, h)
			if p.Halted == nil {
				p.Halted = &h
			}
		case Committed(n, r.Spec.Version):
			// Done.
		case SameVersion(n.Version, r.Spec.Version):
			// On the target but not committed (a trial boot, or a node
			// that does not report): never started, never counted.
		case c.InFlight():
			// Another OSVersion is upgrading this node; leave it alone.
		case n.Version == "":
			// Not running keso (osImage is not "keso <version>").
		case !n.Ready:
			// Cannot run a Job on it; it stays Pending until Ready.
		default:
			switch stageOf(r.Spec, n, now) {
			case stageNone:
				p.Stage = append(p.Stage, n.Name)
			case stageRunning:
				p.Staging = append(p.Staging, n.Name)
			default:
				eligible = append(eligible, n.Name)
			}
		}
	}

	win, _ := ParseWindow(r.Spec.Window)
	if len(p.Blocked) > 0 {
		p.Reason = fmt.Sprintf("node %s blocked: %s", p.Blocked[0].Node, p.Blocked[0].Reason)
	}
	switch {
	case validErr != nil:
		p.State, p.Reason = StateInvalid, validErr.Error()
	case p.Halted != nil:
		p.State, p.Reason = StateHalted, fmt.Sprintf("node %s: %s", p.Halted.Node, p.Halted.Reason)
	case r.Spec.Paused:
		p.State, p.Reason = StatePaused, "spec.paused is true"
	case !win.Open(now) && len(eligible)+len(p.Staging)+len(p.Stage) > 0:
		p.NextWindow = win.NextOpen(now)
		p.State, p.Reason = StateWaiting, "outside the maintenance window; opens "+p.NextWindow.UTC().Format(time.RFC3339)
		if n := len(p.Staging) + len(p.Stage); n > 0 {
			p.Reason += fmt.Sprintf("; %d staging", n)
		}
	default:
		n := min(Slots(r.Spec, p.Selected, len(p.InFlight)), len(eligible))
		p.Start = eligible[:n]
		p.State = StateProgressing
	}
	if p.State == StateWaiting && len(p.InFlight) > 0 {
		p.State = StateProgressing
	}
	if p.State != StateProgressing && p.State != StateWaiting {
		// Invalid, halted or paused: no new stage Jobs either.
		p.Stage = nil
	}
	p.Status = status(r, p, validErr, now)
	if p.State == StateProgressing && p.Status.Upgraded == p.Status.Total && len(p.InFlight) == 0 {
		p.State = StateComplete
		p.Status.State = StateComplete
		setComplete(&p.Status, r.Generation, now)
	}
	return p
}

// Stages of a node's stage Job.
const (
	stageNone    = iota // no stage Job: create one
	stageRunning        // its stage Job runs: wait
	stageDone           // staged, or the stage Job ended: may start
)

// stageOf tells where node n is in staging spec's image: done when its
// inactive slot holds the image (the node says so, keso.io/staged) or its
// stage Job ended, whether it succeeded (the node's report follows) or
// failed (the upgrade Job fetches what is missing, resuming the stage's
// download), or got no pod within JobStartTimeout (the upgrade Job meets
// the same refusal and is reported Blocked).
func stageOf(spec kesov1.OSVersionSpec, n Node, now time.Time) int {
	j := n.StageJob
	switch {
	case n.Staged != "" && n.Staged == string(spec.SHA256[KesoArch(n.Arch)]):
		return stageDone
	case !j.Exists:
		return stageNone
	case j.Succeeded || j.Failed:
		return stageDone
	case !j.HasPods && !j.Created.IsZero() && now.Sub(j.Created) > JobStartTimeout(spec):
		return stageDone
	}
	return stageRunning
}

// status computes the OSVersion status from the plan. Condition times are
// now; the applier keeps the old time when a condition's status is unchanged.
func status(r Rollout, p Plan, validErr error, now time.Time) kesov1.OSVersionStatus {
	st := kesov1.OSVersionStatus{
		ObservedGeneration: r.Generation,
		Total:              int32(len(p.Selected)),
		State:              p.State,
		Resumed:            r.Resume,
	}
	var fetched, needed int64
	reported := false
	starting := map[string]bool{}
	for _, n := range p.Start {
		starting[n] = true
	}
	for _, n := range p.Selected {
		ns := kesov1.NodeStatus{Name: n.Name, FromVersion: n.Version, Phase: kesov1.NodePending}
		c := n.Claim
		mine := c != nil && c.OSVersion == r.Name
		switch {
		case mine && c.InFlight():
			ns.Phase, ns.FromVersion, ns.Message = c.Phase, c.From, c.Message
			ns.LastTransitionTime = metav1.NewTime(c.Since)
		case c.halts(r):
			ns.Phase, ns.FromVersion, ns.Message = c.Phase, c.From, failReason(c, n)
			ns.LastTransitionTime = metav1.NewTime(c.Since)
		case regressed(r, n):
			ns.Phase, ns.FromVersion, ns.Message = kesov1.NodeFailed, c.From, regressReason(n, r.Spec.Version)
			ns.LastTransitionTime = metav1.NewTime(now)
		case Committed(n, r.Spec.Version) && (n.Ready || mine && c.Phase == kesov1.NodeUpgraded):
			ns.Phase = kesov1.NodeUpgraded
			if mine {
				ns.FromVersion = c.From
				ns.LastTransitionTime = metav1.NewTime(c.Since)
			}
			st.Upgraded++
		case SameVersion(n.Version, r.Spec.Version) && !Committed(n, r.Spec.Version):
			ns.Message = fmt.Sprintf("runs %s but has not committed it (%s)", r.Spec.Version, commitState(n))
		case starting[n.Name]:
			ns.Phase, ns.Message = kesov1.NodeDraining, "starting"
			ns.LastTransitionTime = metav1.NewTime(now)
		case c.InFlight():
			ns.Message = "being upgraded by OSVersion " + c.OSVersion
		case n.Version == "":
			ns.Message = "not a keso node (osImage is not \"keso <version>\")"
		case !n.Ready:
			ns.Message = "node is not Ready"
		}
		if want := string(r.Spec.SHA256[KesoArch(n.Arch)]); want != "" && ns.Phase != kesov1.NodeUpgraded && ns.Phase != kesov1.NodeFailed {
			ns.Staged = n.Staged == want
			if ns.Staged {
				st.Staged++
			}
			if n.Progress.SHA256 == want {
				ns.Fetched, ns.Needed = n.Progress.Fetched, n.Progress.Needed
				fetched, needed, reported = fetched+ns.Fetched, needed+ns.Needed, true
			}
			if ns.Phase == kesov1.NodePending && ns.Message == "" && n.Version != "" && n.Ready && !c.InFlight() {
				ns.Message = stageMessage(r.Spec, n, ns, p.State == StateWaiting, now)
			}
		}
		if n.ClaimErr != nil {
			ns.Message = n.ClaimErr.Error()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if reported {
		st.Fetched = mib(fetched) + "/" + mib(needed)
	}
	cond := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		st.Conditions = append(st.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: r.Generation, LastTransitionTime: metav1.NewTime(now),
		})
	}
	if validErr != nil {
		cond(kesov1.ConditionValidated, false, "Invalid", validErr.Error())
	} else {
		cond(kesov1.ConditionValidated, true, "Valid", "spec is valid")
	}
	progressing := len(p.InFlight)+len(p.Start) > 0
	cond(kesov1.ConditionProgressing, progressing, p.State, progressMessage(p, st))
	cond(kesov1.ConditionComplete, false, "NodesPending", fmt.Sprintf("%d of %d nodes on %s", st.Upgraded, st.Total, r.Spec.Version))
	if p.Halted != nil {
		reason := "NodeFailed"
		if p.Halted.Regressed {
			reason = "RolledBackAfterUpgrade"
		}
		cond(kesov1.ConditionHalted, true, reason, fmt.Sprintf("node %s: %s", p.Halted.Node, p.Halted.Reason))
	} else {
		cond(kesov1.ConditionHalted, false, "NotHalted", "no node failed")
	}
	if len(p.Blocked) > 0 {
		var msgs []string
		for _, b := range p.Blocked {
			msgs = append(msgs, fmt.Sprintf("node %s: %s", b.Node, b.Reason))
		}
		reason, _, _ := strings.Cut(p.Blocked[0].Reason, ":")
		cond(kesov1.ConditionBlocked, true, reason, strings.Join(msgs, "; "))
	} else {
		cond(kesov1.ConditionBlocked, false, "NotBlocked", "no node is waiting for its upgrade Job")
	}
	switch {
	case p.Halted != nil:
		st.Message = fmt.Sprintf("node %s: %s", p.Halted.Node, p.Halted.Reason)
	case p.State == StateInvalid || p.State == StatePaused || p.State == StateWaiting || len(p.Blocked) > 0:
		st.Message = p.Reason
	}
	return st
}

// stageMessage says where a node that waits for its upgrade is in
// staging the target.
func stageMessage(spec kesov1.OSVersionSpec, n Node, ns kesov1.NodeStatus, waiting bool, now time.Time) string {
	progress := "staging"
	switch {
	case ns.Needed > 0 && ns.Fetched >= ns.Needed:
		progress = fmt.Sprintf("staging: %s fetched; writing and checking the inactive slot", mib(ns.Needed))
	case ns.Needed > 0:
		progress = fmt.Sprintf("staging: %s of %s fetched", mib(ns.Fetched), mib(ns.Needed))
	}
	switch {
	case ns.Staged && waiting:
		return "staged; switches in the maintenance window"
	case ns.Staged:
		return "staged; switches when a slot is free"
	case stageOf(spec, n, now) != stageDone:
		return progress
	case n.StageJob.Failed:
		return fmt.Sprintf("staging failed (%s); its upgrade fetches what is missing", n.StageJob.Message)
	case n.StageJob.Succeeded:
		return "staged (its stage Job succeeded)"
	}
	return "its stage Job got no pod; its upgrade fetches the image"
}

// mib says a byte count in MiB, for the status.
func mib(n int64) string { return fmt.Sprintf("%.1fMi", float64(n)/(1<<20)) }

// regressed reports whether node n, counted Upgraded to r's target by its
// claim, now runs another version.
func regressed(r Rollout, n Node) bool {
	c := n.Claim
	return c != nil && c.OSVersion == r.Name && c.Phase == kesov1.NodeUpgraded &&
		SameVersion(c.Target, r.Spec.Version) && Regressed(n, r.Spec.Version)
}

func regressReason(n Node, target string) string {
	v := n.Version
	if v == "" || SameVersion(v, target) {
		v = n.Reported
	}
	reason := fmt.Sprintf("RolledBackAfterUpgrade: node was counted Upgraded to %s and now runs %q", target, v)
	if n.RollbackNote != "" {
		reason += " (" + RollbackAnnotation + ": " + n.RollbackNote + ")"
	}
	return reason + "; it is not upgraded again to " + target + " until keso.io/resume changes"
}

// failReason is the reason recorded in a Failed claim, completed with the
// node's keso.io/rollback when it arrived after the failure was recorded
// and is about this target: the kubelet's new osImage and the node's own
// report are separate writes, in either order, so a rollback can be seen
// before the node says why.
func failReason(c *Claim, n Node) string {
	note := n.RollbackNote
	from, _, _ := strings.Cut(note, " -> ")
	if note == "" || strings.Contains(c.Message, note) || !SameVersion(strings.TrimSpace(from), c.Target) {
		return c.Message
	}
	return c.Message + "; " + RollbackAnnotation + ": " + note
}

func progressMessage(p Plan, st kesov1.OSVersionStatus) string {
	msg := fmt.Sprintf("%d of %d upgraded, %d in progress", st.Upgraded, st.Total, len(p.InFlight)+len(p.Start))
	if p.Reason != "" {
		msg += "; " + p.Reason
	}
	return msg
}

func setComplete(st *kesov1.OSVersionStatus, gen int64, now time.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == kesov1.ConditionComplete {
			st.Conditions[i].Status = metav1.ConditionTrue
			st.Conditions[i].Reason = "AllNodesUpgraded"
		}
	}
}
