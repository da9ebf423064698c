package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteInPlace(t *testing.T) {
	root := t.TempDir()
	f := FS{Root: root}
	if err := f.WriteInPlace("/proc/sys/x", []byte("1\n")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteInPlace on a missing file = %v, want not-exist (it must not create /proc/sys entries)", err)
	}
	p := filepath.Join(root, "val")
	os.WriteFile(p, []byte("123456\n"), 0o644)
	ino := inode(t, p)
	if err := f.WriteInPlace("/val", []byte("7\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "7\n" {
		t.Errorf("content %q, want 7\\n", b)
	}
	if inode(t, p) != ino {
		t.Error("WriteInPlace replaced the file instead of writing into it")
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestHostnameMatchesKernel(t *testing.T) {
	got, err := Linux{}.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Hostname()
	if got != want {
		t.Errorf("Hostname = %q, os.Hostname = %q", got, want)
	}
}
