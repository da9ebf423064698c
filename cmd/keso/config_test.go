package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidateReportsPositions(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	src := "#cloud-config\nhostname: store-1\nssh_authorized_keyz:\n  - github:alice\nkeso:\n  network:\n    interfaces:\n      - name: eth0\n        addresses: [10.0.0.300/24]\n  ntp_servers: {pool: pool.ntp.org}\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := configValidate([]string{bad}, &out)
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		bad + `:3:1: warning: unknown key "ssh_authorized_keyz"; did you mean "ssh_authorized_keys"?`,
		bad + `:9:21: error: keso.network.interfaces[0].addresses[0]: "10.0.0.300/24" is not an address in CIDR form`,
		bad + `:10:16: error: keso.ntp_servers: expected a list, got a mapping`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], want[i])
		}
	}
}

func TestConfigValidateStrict(t *testing.T) {
	f := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(f, []byte("hostnme: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want int
	}{
		{[]string{f}, 0},
		{[]string{"--strict", f}, 1},
		{[]string{filepath.Join(t.TempDir(), "missing.yaml")}, 1},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if got := configValidate(tt.args, &out); got != tt.want {
			t.Errorf("configValidate(%v) = %d, want %d (output %q)", tt.args, got, tt.want, out.String())
		}
	}
}

func TestConfigValidateExamplesSilently(t *testing.T) {
	files, _ := filepath.Glob("../../config-examples/*.yaml")
	var out bytes.Buffer
	if code := configValidate(files, &out); code != 0 || out.Len() != 0 {
		t.Errorf("validate examples: exit %d, output %q; want 0 and nothing", code, out.String())
	}
}

func TestConfigShowAnnotatesSources(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("hostname: a\nkeso:\n  labels: {x: \"1\"}\n"), 0o644)
	os.WriteFile(b, []byte("hostname: b\n"), 0o644)
	var out bytes.Buffer
	if code := configShow([]string{"--cmdline", "quiet keso.password=pw", a, b}, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"hostname: b # from " + b + ":1", "labels: # from " + a + ":3", "password: pw # from cmdline:1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, out.String())
		}
	}
}
