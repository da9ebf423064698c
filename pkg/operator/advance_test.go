package operator

import (
	"strings"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestAdvance(t *testing.T) {
	base := Claim{OSVersion: "osv", Target: "1.1.0", From: "1.0.0", BootID: "boot-1", Since: now.Add(-time.Minute)}
	draining, upgrading := base, base
	draining.Phase, upgrading.Phase = kesov1.NodeDraining, kesov1.NodeUpgrading
	old := Node{Name: "n", Version: "1.0.0", Ready: true, Unschedulable: true, BootID: "boot-1", Reported: "1.0.0", Committed: true}
	rebootedOld := old
	rebootedOld.BootID, rebootedOld.RollbackNote = "boot-2", "1.1.0 -> 1.0.0: node not Ready within 5m"
	// The node's report lags its osImage after the reboot: it still says
	// 1.0.0 committed (written by the previous boot) until the agent runs.
	trialStale := old
	trialStale.BootID, trialStale.Version = "boot-2", "1.1.0"
	trial := trialStale
	trial.Reported, trial.Committed = "1.1.0", false
	committedNew := trial
	committedNew.Committed = true
	schedulable := old
	schedulable.Unschedulable = false
	notReadyNew := committedNew
	notReadyNew.Ready = false
	running := JobState{Exists: true, HasPods: true}
	refusedDraining := draining
	refusedDraining.Blocked, refusedDraining.Message = now.Add(-40*time.Second), "JobRefused: jobs.batch is forbidden"
	refusedLong := refusedDraining
	refusedLong.Blocked = now.Add(-3 * time.Minute)
	warnedUpgrading := upgrading
	warnedUpgrading.Since, warnedUpgrading.Warning = now.Add(-20*time.Second), `would violate PodSecurity "baseline:latest": privileged`
	blockedUpgrading := warnedUpgrading
	blockedUpgrading.Blocked = now.Add(-10 * time.Second)
	noPodLong := warnedUpgrading
	noPodLong.Since = now.Add(-3 * time.Minute)
	pending := DrainPlan{Evict: []string{"ns/p"}, Pending: 1}
	blocked := DrainPlan{Blockers: []string{"ns/q: not managed by a controller (set drain.force)"}}
	short := spec(func(s *kesov1.OSVersionSpec) {
		s.Drain.Timeout = &metav1.Duration{Duration: 30 * time.Second}
		s.UpgradeTimeout = &metav1.Duration{Duration: 30 * time.Second}
	})
	noDrain := spec(func(s *kesov1.OSVersionSpec) { s.Drain.Enabled = ptr.To(false) })
	longUpgrade := upgrading
	longUpgrade.Since = now.Add(-31 * time.Minute)
	tests := []struct {
		name    string
		spec    kesov1.OSVersionSpec
		c       Claim
		n       Node
		job     JobState
		drain   DrainPlan
		want    ActionKind
		reason  string
		release bool
	}{
		{"cordon first", spec(), draining, schedulable, JobState{}, DrainPlan{}, ActCordon, "", false},
		{"evict pending pods", spec(), draining, old, JobState{}, pending, ActDrain, "", false},
		{"drained: create Job", spec(), draining, old, JobState{}, DrainPlan{}, ActCreateJob, "", false},
		{"drain disabled: create Job", noDrain, draining, old, JobState{}, pending, ActCreateJob, "", false},
		{"drain timeout", short, draining, old, JobState{}, blocked, ActFail, "DrainTimeout", false},
		{"upgrading: wait", spec(), upgrading, old, running, DrainPlan{}, ActWait, "", false},
		{"job lost: create again", spec(), upgrading, old, JobState{}, DrainPlan{}, ActCreateJob, "", false},
		{"Ready on new version, committed: upgraded", spec(), upgrading, committedNew, JobState{Exists: true, Failed: true, HasPods: true}, DrainPlan{}, ActSucceed, "", false},
		{"Ready on new version, report still from the old boot: wait", spec(), upgrading, trialStale, running, DrainPlan{}, ActWait, "", false},
		{"Ready on new version in its trial (committed=false): wait", spec(), upgrading, trial, running, DrainPlan{}, ActWait, "", false},
		{"committed but not Ready yet: wait", spec(), upgrading, notReadyNew, running, DrainPlan{}, ActWait, "", false},
		{"trial never committed: timeout names the report", spec(), longUpgrade, trial, running, DrainPlan{}, ActFail, `Timeout: node Ready on 1.1.0 but its slot not committed within 30m0s (keso.io/version="1.1.0" keso.io/committed=false)`, false},
		{"rolled back (during the trial)", spec(), upgrading, rebootedOld, JobState{Exists: true, Succeeded: true, HasPods: true}, DrainPlan{}, ActFail, "RolledBack", false},
		{"job failed before reboot", spec(), upgrading, old, JobState{Exists: true, Failed: true, Message: "BackoffLimitExceeded", HasPods: true}, DrainPlan{}, ActFail, "JobFailed: BackoffLimitExceeded", false},
		{"never came back", short, upgrading, old, JobState{Exists: true, Succeeded: true, HasPods: true}, DrainPlan{}, ActFail, "Timeout", false},
		{"Job refused: retry within JobStartTimeout", spec(), refusedDraining, old, JobState{}, DrainPlan{}, ActCreateJob, "", false},
		{"Job refused for too long: give the node back", spec(), refusedLong, old, JobState{}, DrainPlan{}, ActFail, "JobRefused: jobs.batch is forbidden (still refused after 2m0s", true},
		{"Job refused, short drain timeout bounds it", short, refusedDraining, old, JobState{}, DrainPlan{}, ActFail, "JobRefused", true},
		{"Job without pod: blocked, with the API server's warning", spec(), warnedUpgrading, old, JobState{Exists: true}, DrainPlan{}, ActBlock, `JobNotStarted: the upgrade Job has no pod after 10s; the API server warned when it was created: would violate PodSecurity`, false},
		{"Job without pod, already blocked: wait", spec(), blockedUpgrading, old, JobState{Exists: true}, DrainPlan{}, ActWait, "", false},
		{"Job without pod for too long: give the node back", spec(), noPodLong, old, JobState{Exists: true}, DrainPlan{}, ActFail, "JobNotStarted: the upgrade Job got no pod within 2m0s", true},
		{"Job without pod but the node rebooted: not blocked", spec(), warnedUpgrading, trial, JobState{Exists: true}, DrainPlan{}, ActWait, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Advance(tt.spec, tt.c, tt.n, tt.job, tt.drain, now)
			if got.Kind != tt.want || !strings.HasPrefix(got.Reason, tt.reason) || got.Release != tt.release {
				t.Errorf("Advance = %s %q release %v, want %s %q… release %v", got.Kind, got.Reason, got.Release, tt.want, tt.reason, tt.release)
			}
		})
	}
}

func TestUpgradedNeedsCommit(t *testing.T) {
	ok := Node{Version: "1.1.0", Reported: "1.1.0", Committed: true, Ready: true}
	mod := func(f func(*Node)) Node { n := ok; f(&n); return n }
	tests := []struct {
		name string
		n    Node
		want bool
	}{
		{"Ready, osImage, report and commit on target", ok, true},
		{"v-prefixed versions compare equal", mod(func(n *Node) { n.Version, n.Reported = "v1.1.0", "v1.1.0" }), true},
		{"not Ready", mod(func(n *Node) { n.Ready = false }), false},
		{"trial: committed false", mod(func(n *Node) { n.Committed = false }), false},
		{"no report (node without the agent)", mod(func(n *Node) { n.Reported, n.Committed = "", false }), false},
		{"report from the previous boot", mod(func(n *Node) { n.Reported = "1.0.0" }), false},
		{"osImage on another version", mod(func(n *Node) { n.Version = "1.0.0" }), false},
	}
	for _, tt := range tests {
		if got := Upgraded(tt.n, "1.1.0"); got != tt.want {
			t.Errorf("%s: Upgraded = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestStageAnnotations: the node's keso.io/staged and
// keso.io/stage-progress as the planner reads them; anything malformed
// is nothing staged, no progress.
func TestStageAnnotations(t *testing.T) {
	for _, tc := range []struct {
		staged, progress string
		want             Node
	}{
		{"", "", Node{}},
		{"2.0.0 " + hash, hash + " 300/4000", Node{Staged: hash, Progress: Download{SHA256: hash, Fetched: 300, Needed: 4000}}},
		{"2.0.0 " + strings.ToUpper(hash), strings.ToUpper(hash) + " 0/0", Node{Staged: hash, Progress: Download{SHA256: hash}}},
		{"2.0.0", hash + " 300", Node{}},
		{hash, hash + " -1/4000", Node{}},
		{"", hash + " x/4000", Node{}},
	} {
		var got Node
		got.Staged = parseStaged(tc.staged)
		got.Progress.SHA256, got.Progress.Fetched, got.Progress.Needed = parseStageProgress(tc.progress)
		if got.Staged != tc.want.Staged || got.Progress != tc.want.Progress {
			t.Errorf("staged %q, progress %q: got %q %+v, want %q %+v", tc.staged, tc.progress, got.Staged, got.Progress, tc.want.Staged, tc.want.Progress)
		}
	}
}
