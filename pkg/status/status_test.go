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
