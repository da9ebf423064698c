package systemstage

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/initrd"
)

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
	var log bytes.Buffer
	var handed initrd.Info
	st := &Stage{Root: root, Log: &log, Next: func(b initrd.Info) error { handed = b; return errors.New("next ran") }}
	if err := st.Run(); err == nil || err.Error() != "next ran" {
		t.Fatalf("Run = %v, want Next's error", err)
	}
	if handed.Mode != "disk" || handed.Slot != "b" {
		t.Errorf("Next got %+v", handed)
	}
	if !strings.Contains(log.String(), "keso 0.1.0 (disk)") {
		t.Errorf("banner missing from %q", log.String())
	}
	b, err := os.ReadFile(filepath.Join(root, BootJSON))
	if err != nil {
		t.Fatal(err)
	}
	var got initrd.Info
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
		_, err := (&Stage{Root: root}).Plan()
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
