package systemstage

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type fakeExec struct {
	path string
	argv []string
	env  []string
}

func (f *fakeExec) Exec(path string, argv, env []string) error {
	f.path, f.argv, f.env = path, argv, env
	return errors.New("fake exec")
}

func writeFile(t *testing.T, root, p, data string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRun(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/os-release", "NAME=keso\nID=keso\nVERSION_ID=\"0.1.0\"\nPRETTY_NAME=\"keso 0.1.0\"\n")
	writeFile(t, root, "/run/keso/initrd.json", `{"mode":"disk","slot":"b","root":"/dev/vda3","root_device":"/dev/vda3","state":"/dev/vda4","state_grown_blocks":[100,200],"cmdline":"keso.slot=b"}`)
	fe := &fakeExec{}
	var log bytes.Buffer
	st := &Stage{Host: fe, Root: root, Log: &log}
	if err := st.Run(); err == nil || err.Error() != "fake exec" {
		t.Fatalf("Run = %v, want the fake exec error", err)
	}
	if !strings.Contains(log.String(), "keso 0.1.0 (disk)") {
		t.Errorf("banner missing from %q", log.String())
	}
	if got, want := fe.path, filepath.Join(root, K3s); got != want {
		t.Errorf("exec path = %q, want %q", got, want)
	}
	if got, want := strings.Join(fe.argv, " "), "/usr/local/bin/k3s server"; got != want {
		t.Errorf("argv = %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(fe.env, "\n"), "KESO_BOOT_MODE=disk") {
		t.Errorf("env %v lacks KESO_BOOT_MODE=disk", fe.env)
	}
	b, err := os.ReadFile(filepath.Join(root, BootJSON))
	if err != nil {
		t.Fatal(err)
	}
	var got Boot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Mode != "disk" || got.Slot != "b" || got.Version != "0.1.0" || got.Root != "/dev/vda3" || got.State != "/dev/vda4" {
		t.Errorf("boot.json = %+v", got)
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"no initrd record", map[string]string{"/etc/os-release": "VERSION_ID=1\n"}, "read what the initrd stage found"},
		{"bad record", map[string]string{"/etc/os-release": "VERSION_ID=1\n", "/run/keso/initrd.json": "{"}, "decode /run/keso/initrd.json"},
		{"no version", map[string]string{"/etc/os-release": "ID=keso\n", "/run/keso/initrd.json": `{"mode":"live"}`}, "no VERSION_ID in"},
	}
	for _, tt := range tests {
		root := t.TempDir()
		for p, d := range tt.files {
			writeFile(t, root, p, d)
		}
		_, _, err := (&Stage{Root: root}).Plan()
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
