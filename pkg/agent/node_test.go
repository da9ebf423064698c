package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/initrd"
	"github.com/keso-os/keso/pkg/upgrade"
)

func TestNodeAnnotations(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rb := &upgrade.Rollback{FromVersion: "2.0.0", ToVersion: "1.0.0", Slot: "b", Reason: "slot b (2.0.0) did not become healthy in 3 tries", At: t0}
	disk := func(slot string) initrd.Info { return initrd.Info{Mode: "disk", Slot: slot, Version: "1.0.0"} }
	for _, tc := range []struct {
		name       string
		boot       initrd.Info
		bs         *upgrade.BootStatus
		set        map[string]string
		removeKeys []string
	}{
		{"committed slot", disk("a"), &upgrade.BootStatus{Committed: true},
			map[string]string{"keso.io/version": "1.0.0", "keso.io/slot": "a", "keso.io/committed": "true"}, []string{"keso.io/rollback"}},
		{"trial", initrd.Info{Mode: "disk", Slot: "b", Version: "2.0.0"}, &upgrade.BootStatus{Trial: true, TriesLeft: 2},
			map[string]string{"keso.io/version": "2.0.0", "keso.io/slot": "b", "keso.io/committed": "false"}, []string{"keso.io/rollback"}},
		{"rolled back", disk("a"), &upgrade.BootStatus{Committed: true, LastRollback: rb},
			map[string]string{"keso.io/version": "1.0.0", "keso.io/slot": "a", "keso.io/committed": "true",
				"keso.io/rollback": "2.0.0 -> 1.0.0: slot b (2.0.0) did not become healthy in 3 tries"}, nil},
		{"rollback before a later commit", disk("a"), &upgrade.BootStatus{Committed: true, LastRollback: rb,
			LastCommit: &upgrade.Commit{Version: "1.0.0", At: t0.Add(time.Hour)}},
			map[string]string{"keso.io/version": "1.0.0", "keso.io/slot": "a", "keso.io/committed": "true"}, []string{"keso.io/rollback"}},
		{"rollback after an older commit", disk("a"), &upgrade.BootStatus{Committed: true, LastRollback: rb,
			LastCommit: &upgrade.Commit{Version: "1.0.0", At: t0.Add(-time.Hour)}},
			map[string]string{"keso.io/version": "1.0.0", "keso.io/slot": "a", "keso.io/committed": "true",
				"keso.io/rollback": "2.0.0 -> 1.0.0: slot b (2.0.0) did not become healthy in 3 tries"}, nil},
		// The ESP could not be read: not counted as committed; the
		// rollback annotation is left as it is.
		{"assessment unknown", disk("b"), nil,
			map[string]string{"keso.io/version": "1.0.0", "keso.io/slot": "b", "keso.io/committed": "false"}, nil},
		{"live", initrd.Info{Mode: "live", Version: "1.0.0"}, nil,
			map[string]string{"keso.io/version": "1.0.0", "keso.io/committed": "true"}, []string{"keso.io/slot", "keso.io/rollback"}},
		{"netboot", initrd.Info{Mode: "netboot", Version: "1.0.0"}, nil,
			map[string]string{"keso.io/version": "1.0.0", "keso.io/committed": "true"}, []string{"keso.io/slot", "keso.io/rollback"}},
	} {
		set, remove := nodeAnnotations(tc.boot, tc.bs)
		if !reflect.DeepEqual(set, tc.set) {
			t.Errorf("%s: set %v, want %v", tc.name, set, tc.set)
		}
		if !reflect.DeepEqual(remove, tc.removeKeys) {
			t.Errorf("%s: remove %v, want %v", tc.name, remove, tc.removeKeys)
		}
	}
}

// fakeRunner answers for commands by their first word after sh -c.
type fakeRunner struct {
	ran []string
	out map[string]string
	err map[string]error
}

func (f *fakeRunner) Run(ctx context.Context, argv, env []string, out io.Writer) error {
	cmd := strings.Join(argv, " ")
	f.ran = append(f.ran, cmd)
	io.WriteString(out, f.out[cmd])
	if cmd == "/bin/sh -c sleep 10" {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err[cmd]
}

func TestHealthGate(t *testing.T) {
	ready := func(ok bool, why string) func(context.Context) (bool, string) {
		return func(context.Context) (bool, string) { return ok, why }
	}
	long := strings.Repeat("x", 1000) + "\nlast line\n"
	checks := []cloudconfig.Command{{Shell: "curl -f http://127.0.0.1/healthz"}, {Argv: []string{"/opt/bin/till-check", "--quick"}}}
	for _, tc := range []struct {
		name   string
		ready  func(context.Context) (bool, string)
		checks []cloudconfig.Command
		out    map[string]string
		err    map[string]error
		ok     bool
		why    string // substring
		ran    string
	}{
		{name: "not Ready", ready: ready(false, "node n1 is not Ready (Ready=False KubeletNotReady)"), checks: checks,
			why: "node n1 is not Ready (Ready=False KubeletNotReady)"},
		{name: "Ready, no checks", ready: ready(true, ""), ok: true},
		{name: "Ready, checks pass", ready: ready(true, ""), checks: checks, ok: true,
			ran: "/bin/sh -c curl -f http://127.0.0.1/healthz | /opt/bin/till-check --quick"},
		{name: "a check fails", ready: ready(true, ""), checks: checks,
			out: map[string]string{"/opt/bin/till-check --quick": "checking printer\nprinter offline\n"},
			err: map[string]error{"/opt/bin/till-check --quick": errors.New("exit status 3")},
			why: `keso.upgrade.health_checks[1] (["/opt/bin/till-check" "--quick"]) failed: exit status 3: checking printer | printer offline`,
			ran: "/bin/sh -c curl -f http://127.0.0.1/healthz | /opt/bin/till-check --quick"},
		{name: "the first failure stops", ready: ready(true, ""), checks: checks,
			out: map[string]string{"/bin/sh -c curl -f http://127.0.0.1/healthz": long},
			err: map[string]error{"/bin/sh -c curl -f http://127.0.0.1/healthz": fmt.Errorf("exit status 22")},
			why: "failed: exit status 22: …" + strings.Repeat("x", 390) + " | last line", ran: "/bin/sh -c curl -f http://127.0.0.1/healthz"},
		{name: "a check times out", ready: ready(true, ""), checks: []cloudconfig.Command{{Shell: "sleep 10"}},
			why: "keso.upgrade.health_checks[0] (sleep 10) failed: timed out after 50ms", ran: "/bin/sh -c sleep 10"},
	} {
		r := &fakeRunner{out: tc.out, err: tc.err}
		g := healthGate{ready: tc.ready, checks: tc.checks, runner: r, timeout: 50 * time.Millisecond}
		ok, why := g.check(context.Background())
		if ok != tc.ok || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("%s: check = %v, %q; want %v, %q", tc.name, ok, why, tc.ok, tc.why)
		}
		if got := strings.Join(r.ran, " | "); got != tc.ran {
			t.Errorf("%s: ran %q, want %q", tc.name, got, tc.ran)
		}
	}
}

func TestStageAnnotations(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	staged := &upgrade.Staged{FromVersion: "1.0.0", ToVersion: "2.0.0", Slot: "b", SHA256: sum}
	for _, tc := range []struct {
		name       string
		staged     *upgrade.Staged
		progress   upgrade.Progress
		set        map[string]string
		removeKeys []string
	}{
		{"nothing", nil, upgrade.Progress{}, map[string]string{}, []string{"keso.io/staged", "keso.io/stage-progress"}},
		{"downloading", nil, upgrade.Progress{SHA256: sum, Fetched: 300 << 10, Needed: 4 << 20},
			map[string]string{"keso.io/stage-progress": sum + " 307200/4194304"}, []string{"keso.io/staged"}},
		{"size not known yet", nil, upgrade.Progress{SHA256: sum, Fetched: 1000},
			map[string]string{"keso.io/stage-progress": sum + " 1000/0"}, []string{"keso.io/staged"}},
		{"staged", staged, upgrade.Progress{SHA256: sum, Fetched: 4 << 20, Needed: 4 << 20},
			map[string]string{"keso.io/staged": "2.0.0 " + sum, "keso.io/stage-progress": sum + " 4194304/4194304"}, nil},
		{"staged from a local file", staged, upgrade.Progress{},
			map[string]string{"keso.io/staged": "2.0.0 " + sum}, []string{"keso.io/stage-progress"}},
	} {
		set, remove := stageAnnotations(tc.staged, tc.progress)
		if !reflect.DeepEqual(set, tc.set) {
			t.Errorf("%s: set %v, want %v", tc.name, set, tc.set)
		}
		if !reflect.DeepEqual(remove, tc.removeKeys) {
			t.Errorf("%s: remove %v, want %v", tc.name, remove, tc.removeKeys)
		}
	}
}
