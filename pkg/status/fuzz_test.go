package status

import (
	"bytes"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/upgrade"
)

// memFS holds files in memory.
type memFS map[string][]byte

func (m memFS) ReadFile(p string) ([]byte, error) {
	b, ok := m[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

func (m memFS) WriteFileAtomic(p string, data []byte, _ fs.FileMode) error {
	m[p] = append([]byte(nil), data...)
	return nil
}

// FuzzRead: /run/keso/status.json as `keso status` reads it back (the
// agent's upgrade and trial state with it) is refused with an error or
// renders, and writes and reads back the same.
func FuzzRead(f *testing.F) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	for _, s := range []Status{
		{},
		{Version: "1.0.0", Mode: "disk", Slot: "a",
			Upgrade: &upgrade.BootStatus{Slot: "a", Version: "1.0.0", Committed: true,
				LastRollback: &upgrade.Rollback{FromVersion: "1.1.0", ToVersion: "1.0.0", Slot: "b", Reason: "slot b (1.1.0) did not become healthy in 3 tries", At: at}},
			Phases: []phase.Report{{Phase: "files", Changes: []phase.Change{{Action: "write", Target: "/etc/motd"}},
				Failures: []phase.Failure{{Path: "write_files[1]", Where: "user-data:7:5", Err: "permission denied"}}}},
			K3s: K3s{Role: "server", Running: true, Restarts: 1}, Checks: map[string]string{"cgroups": "ok"},
			K3sBinary: &K3sBinary{SHA256: "0123456789abcdef0123456789abcdef", Provenance: ProvenancePinned, Verified: "pinned sha256"},
			Updated:   at},
	} {
		m := memFS{}
		if err := Write(m, s); err != nil {
			f.Fatal(err)
		}
		f.Add(m[Path])
	}
	for _, s := range []string{"", "{", "null", `{"upgrade": {}}`, `{"k3s_binary": null, "k3s": {"restarts": -1}}`, `{"updated": "2026-11-25T02:00:00+23:59"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := memFS{Path: data}
		s, err := Read(m)
		if err != nil {
			return
		}
		Render(io.Discard, s)
		if err := Write(m, s); err != nil {
			t.Fatalf("Read(%q) gave a status that cannot be written: %v", data, err)
		}
		saved := m[Path]
		again, err := Read(m)
		if err != nil {
			t.Fatalf("Read of the written status: %v\n%s", err, saved)
		}
		if err := Write(m, again); err != nil || !bytes.Equal(m[Path], saved) {
			t.Fatalf("status %q written as\n%s\nreads and writes again as\n%s (%v)", data, saved, m[Path], err)
		}
	})
}
