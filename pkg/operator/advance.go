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
	// HasPods is set once the Job has (or had) a pod: a Job that never
	// gets one had its pod creation refused (PodSecurity, a webhook, a
	// quota) or has no Job controller to run it.
	HasPods bool
	// Created is when the Job was created.
	Created time.Time
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
	ActBlock                       // record why the Job cannot run (claim message, condition Blocked, events)
)

func (a ActionKind) String() string {
	return [...]string{"Wait", "Cordon", "Drain", "CreateJob", "Succeed", "Fail", "Block"}[a]
}

// Action is Advance's decision.
type Action struct {
	Kind   ActionKind
	Reason string
	// Release (with ActFail) gives the node back: the upgrade never ran on
	// it, so it is uncordoned (when the operator cordoned it) and its Job,
	// if any, is deleted so it cannot start later.
	Release bool
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

// MaxJobStartTimeout caps JobStartTimeout.
const MaxJobStartTimeout = 2 * time.Minute

// JobStartTimeout is how long a drained node waits for its upgrade Job to
// be accepted by the API server and to get a pod: the drain timeout, at
// most MaxJobStartTimeout (2 minutes). A node still without a running Job
// then fails with JobRefused or JobNotStarted and is given back
// (uncordoned): a refusal is a cluster policy (no --allow-privileged,
// PodSecurity, an admission webhook) that waiting does not fix.
func JobStartTimeout(s kesov1.OSVersionSpec) time.Duration {
	return min(DrainTimeout(s), MaxJobStartTimeout)
}

// jobPodGrace is how long a Job may have no pod before the node is shown
// Blocked (a Job controller creates the pod within a second or two).
func jobPodGrace(s kesov1.OSVersionSpec) time.Duration {
	return min(10*time.Second, JobStartTimeout(s)/2)
}

// DrainEnabled applies the default (true).
func DrainEnabled(s kesov1.OSVersionSpec) bool { return s.Drain.Enabled == nil || *s.Drain.Enabled }

// Advance decides the next step for node n, which carries the in-flight
// claim c. drain is the drain plan for the node's pods (only consulted while
// Draining). It is pure.
//
// Success is Upgraded: Ready on the target version with the new slot
// committed, as the node itself reports (keso.io/version, keso.io/committed);
// a node Ready on the target during its trial boot is waited for, within the
// upgrade timeout, because its trial can still roll back.
//
// The node's boot ID tells a reboot apart from a Job that failed before
// rebooting: a Job failure counts only while the node has not rebooted,
// because `keso upgrade` reboots the node and its pod may be reported failed
// after the reboot even when the upgrade worked.
//
// A Job the API server refuses (the applier records the refusal in the
// claim: Blocked, Message) or that gets no pod is retried for
// JobStartTimeout, then fails with Release: the node is given back.
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
		if !c.Blocked.IsZero() && now.Sub(c.Blocked) > JobStartTimeout(spec) {
			return Action{Kind: ActFail, Release: true,
				Reason: fmt.Sprintf("%s (still refused after %s; node given back)", c.Message, JobStartTimeout(spec))}
		}
		return Action{Kind: ActCreateJob}
	case kesov1.NodeUpgrading:
		rebooted := n.BootID != "" && c.BootID != "" && n.BootID != c.BootID
		noPod := job.Exists && !job.HasPods && !job.Failed && !job.Succeeded && !rebooted
		switch {
		case Upgraded(n, c.Target):
			return Action{Kind: ActSucceed}
		case rebooted && n.Ready && !SameVersion(n.Version, c.Target):
			reason := fmt.Sprintf("RolledBack: node rebooted and came back on %q, not %s", n.Version, c.Target)
			if n.RollbackNote != "" {
				reason += " (" + RollbackAnnotation + ": " + n.RollbackNote + ")"
			}
			return Action{Kind: ActFail, Reason: reason}
		case !rebooted && job.Failed:
			return Action{Kind: ActFail, Reason: "JobFailed: " + job.Message}
		case noPod && now.Sub(c.Since) > JobStartTimeout(spec):
			return Action{Kind: ActFail, Release: true, Reason: fmt.Sprintf("JobNotStarted: the upgrade Job got no pod within %s%s; node given back", JobStartTimeout(spec), warned(c))}
		case noPod && now.Sub(c.Since) > jobPodGrace(spec) && c.Blocked.IsZero():
			return Action{Kind: ActBlock, Reason: fmt.Sprintf("JobNotStarted: the upgrade Job has no pod after %s%s", jobPodGrace(spec), warned(c))}
		case now.Sub(c.Since) > UpgradeTimeout(spec) && SameVersion(n.Version, c.Target) && n.Ready:
			return Action{Kind: ActFail, Reason: fmt.Sprintf("Timeout: node Ready on %s but its slot not committed within %s (%s)", c.Target, UpgradeTimeout(spec), commitState(n))}
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

// warned appends the API server's warning on the Job's creation, if any.
func warned(c Claim) string {
	if c.Warning == "" {
		return ""
	}
	return "; the API server warned when it was created: " + c.Warning
}
