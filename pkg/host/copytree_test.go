package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestCopyTreeKeepsWhatItCopies(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: keeping owners needs root (CI runs as root)")
	}
	src, dst := FS{Root: t.TempDir()}, FS{Root: t.TempDir()}
	when := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	base := src.Path("/data")
	os.MkdirAll(filepath.Join(base, "k3s/server"), 0o700)
	os.WriteFile(filepath.Join(base, "k3s/server/token"), []byte("K10secret::server:abc\n"), 0o600)
	os.WriteFile(filepath.Join(base, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Lchown(filepath.Join(base, "tool"), 1000, 1000) // before chmod: chown clears setuid
	os.Chmod(filepath.Join(base, "tool"), 0o755|fs.ModeSetuid)
	os.Symlink("k3s/server/token", filepath.Join(base, "link"))
	os.Chtimes(filepath.Join(base, "k3s/server/token"), when, when)
	os.Chtimes(filepath.Join(base, "k3s"), when, when)

	n, err := dst.CopyTree(src, "/data", "/copy")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("K10secret::server:abc\n") + len("#!/bin/sh\n")); n != want {
		t.Errorf("copied %d bytes, want %d", n, want)
	}
	a, err := src.TreeSums("/data")
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.TreeSums("/copy")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(a) != len(b) {
		t.Fatalf("sums: %v and %v, want three equal entries", a, b)
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: copy %q, source %q", k, b[k], v)
		}
	}
	for _, c := range []struct {
		p     string
		mode  fs.FileMode
		uid   uint32
		mtime time.Time
	}{
		{"/copy/tool", 0o755 | fs.ModeSetuid, 1000, time.Time{}},
		{"/copy/k3s/server/token", 0o600, 0, when},
		{"/copy/k3s", fs.ModeDir | 0o700, 0, when},
	} {
		fi, err := os.Lstat(dst.Path(c.p))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid); got != c.mode {
			t.Errorf("%s: mode %v, want %v", c.p, got, c.mode)
		}
		if got := fi.Sys().(*syscall.Stat_t).Uid; got != c.uid {
			t.Errorf("%s: uid %d, want %d", c.p, got, c.uid)
		}
		if !c.mtime.IsZero() && !fi.ModTime().Equal(c.mtime) {
			t.Errorf("%s: mtime %v, want %v", c.p, fi.ModTime(), c.mtime)
		}
	}
	// The directories above the copy are made as mkdir -p makes them,
	// whatever the copied tree's modes: the top of an overlay's upper
	// layer among them gives the merged directory its mode (#17: /etc
	// became 0700 and rancher could not read it).
	if _, err := dst.CopyTree(src, "/data/k3s/server/token", "/etc-overlay/upper/rancher/node/token"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc-overlay", "/etc-overlay/upper", "/etc-overlay/upper/rancher/node"} {
		fi, err := os.Stat(dst.Path(p))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), fs.FileMode(0o755); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	if _, err := dst.CopyTree(src, "/missing", "/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CopyTree of a missing tree: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Lstat(dst.Path("/x")); err == nil {
		t.Errorf("CopyTree of a missing tree wrote /x")
	}
}
