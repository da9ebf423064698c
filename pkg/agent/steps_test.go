package agent

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/status"
)

// TestStepsOrder: the boot order keeps the promises the docs make of it.
func TestStepsOrder(t *testing.T) {
	at := map[string]int{}
	for i, s := range steps {
		if _, dup := at[s.Name]; dup {
			t.Errorf("step %q twice", s.Name)
		}
		at[s.Name] = i
	}
	for _, tc := range []struct{ before, after, why string }{
		{"config-trial", "datasource", "a failed config trial returns to the previous config before it is loaded"},
		{"datasource", "init_cmd", "init_cmd comes from the config"},
		{"init_cmd", "hostname", "init_cmd runs before anything else is configured"},
		{"environment", "boot_cmd", "commands see the config's environment"},
		{"users", "files", "write_files may own files to the config's users"},
		{"boot_cmd", "network", "boot_cmd runs before the network"},
		{"sshd", "network", "a box with a broken network config stays reachable"},
		{"consoles", "network", "a box with a broken network config stays reachable"},
		{"network", "ntp", "ntp needs the network"},
		{"network", "users-online", "github: keys need the network"},
		{"install", "k3s", "a silent install ends the boot before k3s"},
		{"check", "k3s", "the status says what k3s lacks before it starts"},
		{"k3s", "run_cmd", "run_cmd runs after k3s started"},
		{"run_cmd", "upgrade", "the trial gate judges the node after its commands"},
	} {
		b, okb := at[tc.before]
		a, oka := at[tc.after]
		if !okb || !oka || b >= a {
			t.Errorf("step %q (at %d, %v) must come before %q (at %d, %v): %s", tc.before, b, okb, tc.after, a, oka, tc.why)
		}
	}
	// The phases the status reports, by the names the docs and the QEMU
	// tests use.
	for _, name := range []string{"init_cmd", "hostname", "modules", "sysctl", "disks", "environment", "users", "files", "boot_cmd", "network", "ntp", "users-online", "run_cmd"} {
		if i, ok := at[name]; !ok || !steps[i].Phase {
			t.Errorf("%q is not a phase step", name)
		}
	}
}

// TestRunStepsRecordsPhasesAndStops: phase steps land in the status in
// order, plain steps do not, and a step that ends the boot stops the loop.
func TestRunStepsRecordsPhasesAndStops(t *testing.T) {
	saved := steps
	defer func() { steps = saved }()
	var ran []string
	mark := func(name string) func(*Agent, *boot, *phase.Recorder) {
		return func(_ *Agent, _ *boot, rec *phase.Recorder) {
			ran = append(ran, name)
			if rec != nil {
				rec.Change("write", name, "")
			}
		}
	}
	steps = []step{
		{"one", true, mark("one")},
		{"plain", false, mark("plain")},
		{"two", true, mark("two")},
		{"end", false, func(_ *Agent, b *boot, _ *phase.Recorder) {
			ran = append(ran, "end")
			b.end = &power.Request{Action: power.PowerOff, Reason: "test"}
		}},
		{"never", true, mark("never")},
	}
	a := &Agent{FS: host.FS{Root: t.TempDir()}, Log: io.Discard}
	req := a.runSteps(&boot{ctx: context.Background()})
	if req == nil || req.Reason != "test" {
		t.Fatalf("runSteps = %+v, want the end step's request", req)
	}
	if got, want := strings.Join(ran, " "), "one plain two end"; got != want {
		t.Errorf("ran %q, want %q", got, want)
	}
	var phases []string
	for _, p := range a.st.Phases {
		phases = append(phases, p.Phase)
	}
	if got, want := strings.Join(phases, " "), "one two"; got != want {
		t.Errorf("status phases %q, want %q", got, want)
	}
	st, err := status.Read(a.FS)
	if err != nil || len(st.Phases) != 2 {
		t.Errorf("status file: %+v, %v; want the two phases written", st.Phases, err)
	}
}
