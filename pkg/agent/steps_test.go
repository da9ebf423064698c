package agent

import "testing"

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
