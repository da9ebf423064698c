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
	old := Node{Name: "n", Version: "1.0.0", Ready: true, Unschedulable: true, BootID: "boot-1"}
	rebootedOld, rebootedNew := old, old
	rebootedOld.BootID, rebootedNew.BootID, rebootedNew.Version = "boot-2", "boot-2", "1.1.0"
	schedulable := old
	schedulable.Unschedulable = false
	notReadyNew := rebootedNew
	notReadyNew.Ready = false
	pending := DrainPlan{Evict: []string{"ns/p"}, Pending: 1}
	blocked := DrainPlan{Blockers: []string{"ns/q: not managed by a controller (set drain.force)"}}
	short := spec(func(s *kesov1.OSVersionSpec) {
		s.Drain.Timeout = &metav1.Duration{Duration: 30 * time.Second}
		s.UpgradeTimeout = &metav1.Duration{Duration: 30 * time.Second}
	})
	noDrain := spec(func(s *kesov1.OSVersionSpec) { s.Drain.Enabled = ptr.To(false) })
	tests := []struct {
		name   string
		spec   kesov1.OSVersionSpec
		c      Claim
		n      Node
		job    JobState
		drain  DrainPlan
		want   ActionKind
		reason string
	}{
		{"cordon first", spec(), draining, schedulable, JobState{}, DrainPlan{}, ActCordon, ""},
		{"evict pending pods", spec(), draining, old, JobState{}, pending, ActDrain, ""},
		{"drained: create Job", spec(), draining, old, JobState{}, DrainPlan{}, ActCreateJob, ""},
		{"drain disabled: create Job", noDrain, draining, old, JobState{}, pending, ActCreateJob, ""},
		{"drain timeout", short, draining, old, JobState{}, blocked, ActFail, "DrainTimeout"},
		{"upgrading: wait", spec(), upgrading, old, JobState{Exists: true}, DrainPlan{}, ActWait, ""},
		{"job lost: create again", spec(), upgrading, old, JobState{}, DrainPlan{}, ActCreateJob, ""},
		{"back on new version and Ready", spec(), upgrading, rebootedNew, JobState{Exists: true, Failed: true}, DrainPlan{}, ActSucceed, ""},
		{"new version but not Ready yet", spec(), upgrading, notReadyNew, JobState{Exists: true}, DrainPlan{}, ActWait, ""},
		{"rolled back", spec(), upgrading, rebootedOld, JobState{Exists: true, Succeeded: true}, DrainPlan{}, ActFail, "RolledBack"},
		{"job failed before reboot", spec(), upgrading, old, JobState{Exists: true, Failed: true, Message: "BackoffLimitExceeded"}, DrainPlan{}, ActFail, "JobFailed: BackoffLimitExceeded"},
		{"never came back", short, upgrading, old, JobState{Exists: true, Succeeded: true}, DrainPlan{}, ActFail, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Advance(tt.spec, tt.c, tt.n, tt.job, tt.drain, now)
			if got.Kind != tt.want || !strings.HasPrefix(got.Reason, tt.reason) {
				t.Errorf("Advance = %s %q, want %s %q…", got.Kind, got.Reason, tt.want, tt.reason)
			}
		})
	}
}
