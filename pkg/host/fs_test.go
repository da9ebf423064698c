package host

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFSPathStaysUnderRoot(t *testing.T) {
	root := t.TempDir()
	f := FS{Root: root}
	tests := []struct{ in, want string }{
		{"/etc/hostname", filepath.Join(root, "etc/hostname")},
		{"etc/hostname", filepath.Join(root, "etc/hostname")},
		{"/../../etc/shadow", filepath.Join(root, "etc/shadow")},
		{"/a/../../b", filepath.Join(root, "b")},
	}
	for _, tt := range tests {
		if got := f.Path(tt.in); got != tt.want {
			t.Errorf("Path(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got, want := (FS{Root: "/"}).Path("/etc/x"), "/etc/x"; got != want {
		t.Errorf("root / Path = %q, want %q", got, want)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	f := FS{Root: t.TempDir()}
	if err := f.WriteFileAtomic("/etc/keso/a.conf", []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFileAtomic("/etc/keso/a.conf", []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFile("/etc/keso/a.conf")
	if err != nil || string(got) != "two" {
		t.Errorf("content = %q, %v; want two", got, err)
	}
	fi, _ := f.Stat("/etc/keso/a.conf")
	if got, want := fi.Mode().Perm(), os.FileMode(0o640); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
	es, _ := f.ReadDir("/etc/keso")
	if len(es) != 1 {
		t.Errorf("directory has %d entries, want 1 (no temp files left)", len(es))
	}
}

func TestTryLock(t *testing.T) {
	f := FS{Root: t.TempDir()}
	release, err := f.TryLock("/var/lib/keso/upgrade.lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.TryLock("/var/lib/keso/upgrade.lock"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock while held: %v, want ErrLocked", err)
	}
	release()
	again, err := f.TryLock("/var/lib/keso/upgrade.lock")
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	again()
}

func TestPeakRSS(t *testing.T) {
	before, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if after < 64<<20 || after < before {
		t.Errorf("peak RSS %d bytes after touching 64 MiB (%d before), want at least 64 MiB", after, before)
	}
	_ = buf[len(buf)-1]
}
