package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/configtrial"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/power"
)

// trialAgent is an agent on a temporary root with a config trial begun
// (old → new) and its first boot counted.
func trialAgent(t *testing.T, auto bool) (*Agent, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	a := &Agent{FS: host.FS{Root: t.TempDir()}, Log: &log, reqs: make(chan *power.Request, 8)}
	tr := configtrial.Trial{Try: configtrial.Duration(time.Minute), AutoConfirm: auto, Management: []string{"10.0.2.15"},
		Applied: time.Now(), Source: "/root/new.yaml"}
	if err := a.FS.WriteFileAtomic(configtrial.ConfigPath, []byte("hostname: old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := configtrial.Begin(a.FS, []byte("hostname: old\n"), []byte("hostname: new\n"), tr); err != nil {
		t.Fatal(err)
	}
	a.startConfigTrial(context.Background())
	if a.cfgTrial == nil || a.st.ConfigTrial == nil || a.st.ConfigTrial.State != "pending" {
		t.Fatalf("trial not started: %+v\n%s", a.st.ConfigTrial, log.String())
	}
	return a, &log
}

// TestConfigTrialEnds: the three ends of a trial boot, as the agent sees
// them: confirmed by `keso config confirm` (the record is gone), confirmed
// by the agent once healthy, or not confirmed by the deadline (a reboot
// request; the next boot reverts).
func TestConfigTrialEnds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		auto     bool
		healthy  bool
		confirm  bool // keso config confirm before the first check
		want     string
		wantBoot bool // a reboot request
	}{
		{"confirmed by the CLI", false, false, true, "confirmed", false},
		{"auto-confirmed when healthy", true, true, false, "confirmed", false},
		{"not healthy by the deadline", true, false, false, "failed", true},
		{"no auto-confirm, no confirm", false, true, false, "failed", true},
	} {
		a, log := trialAgent(t, tc.auto)
		ct := a.cfgTrial
		ct.deadline = time.Now().Add(500 * time.Millisecond)
		healthy := tc.healthy
		h := func(context.Context) (bool, string) {
			if healthy {
				return true, ""
			}
			return false, "management address 10.0.2.15 is not on any link"
		}
		ct.health.Store(&h) // as enableConfigTrialConfirm does once k3s started (used only with auto-confirm)
		if tc.confirm {
			if _, err := configtrial.Confirm(a.FS); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.watchConfigTrial(ctx, ct); close(done) }()
		var req *power.Request
		select {
		case req = <-a.reqs:
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the trial did not end in 10 s:\n%s", tc.name, log)
		}
		cancel()
		<-done
		if got := a.st.ConfigTrial.State; got != tc.want {
			t.Errorf("%s: state %q, want %q\n%s", tc.name, got, tc.want, log)
		}
		if (req != nil) != tc.wantBoot {
			t.Errorf("%s: reboot request %+v, want one: %v", tc.name, req, tc.wantBoot)
		}
		if tc.wantBoot && !strings.Contains(a.st.ConfigTrial.Reason, "not confirmed within 1m0s") {
			t.Errorf("%s: reason %q", tc.name, a.st.ConfigTrial.Reason)
		}
		// What stays on disk: the new config, and a pending record only
		// when the next boot is to revert it.
		_, err := configtrial.Load(a.FS)
		if pending := err == nil; pending != tc.wantBoot {
			t.Errorf("%s: trial still pending = %v, want %v", tc.name, pending, tc.wantBoot)
		}
	}
}

// TestConfigTrialRevertsAtBoot: a boot that finds its trial already begun
// puts the previous config back before anything reads it, and says so.
func TestConfigTrialRevertsAtBoot(t *testing.T) {
	a, _ := trialAgent(t, true)
	var log bytes.Buffer
	b := &Agent{FS: a.FS, Log: &log}
	b.startConfigTrial(context.Background())
	if b.cfgTrial != nil || b.st.ConfigTrial == nil || b.st.ConfigTrial.State != "reverted" {
		t.Fatalf("second boot: trial %+v, status %+v", b.cfgTrial, b.st.ConfigTrial)
	}
	if got, _ := a.FS.ReadFile(configtrial.ConfigPath); string(got) != "hostname: old\n" {
		t.Errorf("config after the revert: %q", got)
	}
	if !strings.Contains(log.String(), "was not confirmed within 1m0s: returned to the previous config") {
		t.Errorf("log: %s", log.String())
	}
}
