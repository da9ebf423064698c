package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCLI(t *testing.T) {
	root := t.TempDir()
	write := func(p, c string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/proc/sys/kernel/osrelease", "6.1.0-test\n")
	write("/proc/self/mountinfo", "1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n")
	// Not enough for k3s: exit 1 with the table.
	var out bytes.Buffer
	if code := runCheck([]string{"--root", root}, &out); code != 1 {
		t.Errorf("keso check on a bare tree: exit %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "module overlay") || !strings.Contains(out.String(), "k3s cannot run") {
		t.Errorf("keso check table: got\n%s\nwant rows and the verdict", out.String())
	}
	// Everything present: exit 0; --json decodes.
	var mods strings.Builder
	for _, m := range []string{"overlay", "veth", "bridge", "br_netfilter", "nf_conntrack", "vxlan", "nf_tables", "nft_compat", "nft_chain_nat"} {
		mods.WriteString(m + " 1 0 - Live 0x0\n")
	}
	write("/proc/modules", mods.String())
	write("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
	out.Reset()
	if code := runCheck([]string{"--json", "--root", root}, &out); code != 0 {
		t.Errorf("keso check --json on a good tree: exit %d, want 0\n%s", code, out.String())
	}
	var got struct {
		OK      bool   `json:"ok"`
		Kernel  string `json:"kernel"`
		Results []struct{ Name, Status string }
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || !got.OK || got.Kernel != "6.1.0-test" || len(got.Results) == 0 {
		t.Errorf("keso check --json: %v, got %+v", err, got)
	}
	if code := runCheck([]string{"extra"}, &out); code != 2 {
		t.Errorf("keso check extra: exit %d, want 2", code)
	}
}

// TestHelpExitsZero: `keso <command> --help` prints the usage and exits 0
// (runbooks run `k3os install --help` to check the CLI); a wrong flag is 2.
func TestHelpExitsZero(t *testing.T) {
	for _, name := range []string{"install", "upgrade", "rollback", "status", "check", "config validate", "config show", "config apply"} {
		words := strings.Fields(name)
		run := commands[words[0]].run
		if run == nil {
			t.Fatalf("no command %q", words[0])
		}
		for _, tc := range []struct {
			flag string
			want int
		}{{"--help", 0}, {"-h", 0}, {"--no-such-flag", 2}} {
			if got := run(append(words[1:], tc.flag)); got != tc.want {
				t.Errorf("keso %s %s: exit %d, want %d", name, tc.flag, got, tc.want)
			}
		}
	}
}
