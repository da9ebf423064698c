package operator

import (
	"fmt"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
)

// JobState is what the controller saw of a node's upgrade Job.
type JobState struct {
	Exists    bool
	Succeeded bool
	Failed    bool
	Message   string
}

// ActionKind is the next thing to do for an in-flight node.
type ActionKind int

// Actions for an in-flight node.
const (
	ActWait      ActionKind = iota // nothing to do until something changes
	ActCordon                      // mark the node unschedulable
	ActDrain                       // evict the pods the drain plan names
	ActCreateJob                   // start the upgrade Job; phase → Upgrading
	ActSucceed                     // uncordon; phase → Upgraded
	ActFail                        // phase → Failed; the rollout halts
)

func (a ActionKind) String() string {
	return [...]string{"Wait", "Cordon", "Drain", "CreateJob", "Succeed", "Fail"}[a]
}

// Action is Advance's decision.
type Action struct {
	Kind   ActionKind
	Reason string
}

// Defaults for timeouts the spec leaves out.
const (
	DefaultDrainTimeout   = 10 * time.Minute
	DefaultUpgradeTimeout = 30 * time.Minute
)

// DrainTimeout and UpgradeTimeout apply the defaults.
func DrainTimeout(s kesov1.OSVersionSpec) time.Duration {
	if s.Drain.Timeout != nil && s.Drain.Timeout.Duration > 0 {
		return s.Drain.Timeout.Duration
	}
	return DefaultDrainTimeout
}

// UpgradeTimeout is the time a node may take from its Job's start to Ready.
func UpgradeTimeout(s kesov1.OSVersionSpec) time.Duration {
	if s.UpgradeTimeout != nil && s.UpgradeTimeout.Duration > 0 {
		return s.UpgradeTimeout.Duration
	}
	return DefaultUpgradeTimeout
}

// DrainEnabled applies the default (true).
func DrainEnabled(s kesov1.OSVersionSpec) bool { return s.Drain.Enabled == nil || *s.Drain.Enabled }

// Advance decides the next step for node n, which carries the in-flight
// claim c. drain is the drain plan for the node's pods (only consulted while
// Draining). It is pure.
//
// The node's boot ID tells a reboot apart from a Job that failed before
// rebooting: a Job failure counts only while the node has not rebooted,
// because `keso upgrade` reboots the node and its pod may be reported failed
// after the reboot even when the upgrade worked.
func Advance(spec kesov1.OSVersionSpec, c Claim, n Node, job JobState, drain DrainPlan, now time.Time) Action {
	switch c.Phase {
	case kesov1.NodeDraining:
		if !n.Unschedulable {
			return Action{Kind: ActCordon}
		}
		if DrainEnabled(spec) && !drain.Done() {
			if now.Sub(c.Since) > DrainTimeout(spec) {
				return Action{Kind: ActFail, Reason: fmt.Sprintf("DrainTimeout: drain exceeded %s; %s", DrainTimeout(spec), drain.Summary())}
			}
			return Action{Kind: ActDrain, Reason: drain.Summary()}
		}
		return Action{Kind: ActCreateJob}
	case kesov1.NodeUpgrading:
		rebooted := n.BootID != "" && c.BootID != "" && n.BootID != c.BootID
		switch {
		case SameVersion(n.Version, c.Target) && n.Ready:
			return Action{Kind: ActSucceed}
		case rebooted && n.Ready:
			return Action{Kind: ActFail, Reason: fmt.Sprintf("RolledBack: node rebooted and came back on %q, not %s", n.Version, c.Target)}
		case !rebooted && job.Failed:
			return Action{Kind: ActFail, Reason: "JobFailed: " + job.Message}
		case now.Sub(c.Since) > UpgradeTimeout(spec):
			return Action{Kind: ActFail, Reason: fmt.Sprintf("Timeout: node not Ready on %s within %s", c.Target, UpgradeTimeout(spec))}
		case !job.Exists && !rebooted && !job.Succeeded:
			// The claim says Upgrading but the Job is gone (deleted by
			// hand, or the create was lost): create it again; the name is
			// deterministic, so this never makes a second Job.
			return Action{Kind: ActCreateJob}
		}
		return Action{Kind: ActWait}
	}
	return Action{Kind: ActWait}
}
