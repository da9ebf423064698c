package upgrade

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memState is a StateFS holding one state file in memory.
type memState struct{ data []byte }

func (m *memState) ReadFile(p string) ([]byte, error) {
	if p != StatePath || m.data == nil {
		return nil, fs.ErrNotExist
	}
	return m.data, nil
}

func (m *memState) WriteFileAtomic(p string, data []byte, _ fs.FileMode) error {
	if p != StatePath {
		return fs.ErrPermission
	}
	m.data = append([]byte(nil), data...)
	return nil
}

// FuzzLoadState: the upgrade state file on the state partition is refused
// with an error or loads a state that the agent can save again and that
// then loads back the same.
func FuzzLoadState(f *testing.F) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, s := range []State{
		{},
		{Pending: &Pending{FromVersion: "1.0.0", ToVersion: "1.1.0", FromSlot: "a", ToSlot: "b", Tries: 3, ArmedAt: at}},
		{Pending: &Pending{FromVersion: "1.1.0", ToVersion: "1.2.0-rc1", FromSlot: "b", ToSlot: "a", Tries: 3, ArmedAt: at,
			Failures: []string{"k3s did not become ready within 5m0s", "health: kubelet not running"}},
			LastRollback: &Rollback{FromVersion: "1.1.0", ToVersion: "1.0.0", Slot: "b", Reason: "3 tries used", At: at.Add(time.Hour)},
			LastCommit:   &Commit{Version: "1.0.0", Slot: "a", At: at.Add(-time.Hour)}},
	} {
		var m memState
		if err := SaveState(&m, s); err != nil {
			f.Fatal(err)
		}
		f.Add(m.data)
	}
	for _, s := range []string{
		"", "{", "null", `{"pending": null}`, `{"pending": {"armed_at": "2026-11-25T10:00:00+23:59"}}`,
		`{"last_commit": {"at": "0000-01-01T00:00:00Z"}}`, `{"pending": {"tries": 1e3}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &memState{data: data}
		s, err := LoadState(m)
		if err != nil {
			if s != (State{}) {
				t.Fatalf("LoadState returned %+v with error %v", s, err)
			}
			return
		}
		if err := SaveState(m, s); err != nil {
			t.Fatalf("LoadState(%q) loaded a state that cannot be saved: %v", data, err)
		}
		saved := m.data
		again, err := LoadState(m)
		if err != nil {
			t.Fatalf("LoadState of the saved state: %v\n%s", err, saved)
		}
		if err := SaveState(m, again); err != nil || !bytes.Equal(m.data, saved) {
			t.Fatalf("state %q saved as\n%s\nloads and saves again as\n%s (%v)", data, saved, m.data, err)
		}
		if _, err := json.Marshal(again); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReadImage: a root squashfs (the upgrade image, read after its
// signature was verified) is refused with an error or gives a version and
// a kernel command line on one line.
func FuzzReadImage(f *testing.F) {
	for _, name := range []string{"tiny-gzip.squashfs", "tiny-uncompressed.squashfs"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		// mksquashfs of a root with etc/os-release (VERSION_ID="1.2.0"),
		// boot/vmlinuz, boot/initrd and the install cmdline.
		if info, err := ReadImage(bytes.NewReader(data), int64(len(data))); err != nil || info.Version != "1.2.0" {
			f.Fatalf("seed %s: ReadImage = %+v, %v; want version 1.2.0", name, info, err)
		}
		f.Add(data)
	}
	f.Add([]byte("hsqs"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ReadImage(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if info.Version == "" {
			t.Fatalf("ReadImage accepted an image without a version: %+v", info)
		}
		if info.Cmdline != strings.Join(strings.Fields(info.Cmdline), " ") {
			t.Fatalf("ReadImage: command line %q is not one line of single-spaced words", info.Cmdline)
		}
	})
}
