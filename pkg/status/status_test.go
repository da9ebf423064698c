package status

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/upgrade"
)

func TestWriteReadRender(t *testing.T) {
	fsys := host.FS{Root: t.TempDir()}
	if _, err := Read(fsys); !errors.Is(err, ErrNoStatus) {
		t.Errorf("Read before Write = %v, want ErrNoStatus", err)
	}
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	s := Status{Version: "1.0.0", Mode: "disk", Slot: "a",
		Upgrade: &upgrade.BootStatus{Slot: "a", Version: "1.0.0", Committed: true,
			LastRollback: &upgrade.Rollback{FromVersion: "1.1.0", ToVersion: "1.0.0", Slot: "b", Reason: "slot b (1.1.0) did not become healthy in 3 tries", At: at}},
		Phases: []phase.Report{{Phase: "files", Changes: []phase.Change{{Action: "write", Target: "/etc/motd"}},
			Failures: []phase.Failure{{Path: "write_files[1]", Where: "user-data:7:5", Err: "permission denied"}}}},
		K3s: K3s{Role: "server", Running: true, Restarts: 1}}
	if err := Write(fsys, s); err != nil {
		t.Fatal(err)
	}
	got, err := Read(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Render(&out, got)
	for _, want := range []string{
		"keso 1.0.0, disk mode, slot A",
		"trial:     no (committed)",
		"rollback:  1.1.0 → 1.0.0 at 2026-11-25T02:00:00Z: slot b (1.1.0) did not become healthy in 3 tries",
		"k3s:       server running, 1 restarts",
		"phase files      1    changes  1 failed",
		"  user-data:7:5: permission denied",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render lacks %q:\n%s", want, out.String())
		}
	}
}

func TestK3sBinaryReadAndRender(t *testing.T) {
	dir := t.TempDir()
	fsys := host.FS{Root: dir}
	if k, err := ReadK3sBinary(fsys); k != nil || err != nil {
		t.Errorf("no file: got %+v, %v; want nil, nil", k, err)
	}
	if err := fsys.WriteFileAtomic(K3sBinaryPath, []byte(`{"sha256":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","version":"v1.31.4+k3s1","provenance":"release-sha256sum","verified":"verified against the release's sha256sum-amd64.txt"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := ReadK3sBinary(fsys)
	if err != nil || k == nil {
		t.Fatalf("ReadK3sBinary = %+v, %v", k, err)
	}
	for _, tc := range []struct {
		k    K3sBinary
		want []string
		not  string
	}{
		{*k, []string{"k3s bin:   v1.31.4+k3s1, sha256 0123456789abcdef…, release-sha256sum: verified against the release's sha256sum-amd64.txt\n"}, "TEST FIXTURE"},
		{K3sBinary{SHA256: "ab", Provenance: ProvenanceTestFixture, Verified: "a keso test fixture"},
			[]string{"k3s bin:   version unknown, sha256 ab, test-fixture: a keso test fixture\n", "warning: this image carries a keso TEST FIXTURE instead of k3s"}, ""},
	} {
		var out bytes.Buffer
		Render(&out, Status{Version: "1.0.0", Mode: "disk", K3sBinary: &tc.k})
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("render lacks %q:\n%s", w, out.String())
			}
		}
		if tc.not != "" && strings.Contains(out.String(), tc.not) {
			t.Errorf("render has %q:\n%s", tc.not, out.String())
		}
	}
	if err := fsys.WriteFileAtomic(K3sBinaryPath, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadK3sBinary(fsys); err == nil || !strings.Contains(err.Error(), K3sBinaryPath) {
		t.Errorf("bad JSON: err = %v, want one naming %s", err, K3sBinaryPath)
	}
}
