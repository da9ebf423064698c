package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGNUCpioReadsIt checks the archive with an independent reader (GNU cpio).
func TestGNUCpioReadsIt(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio (package cpio) not installed: cannot check the archive independently")
	}
	var buf bytes.Buffer
	w := &Writer{W: &buf, MTime: 1700000000}
	for _, e := range []Entry{
		{Name: "dev", Mode: TypeDir | 0o755},
		{Name: "etc", Mode: TypeDir | 0o755},
		{Name: "init", Mode: TypeReg | 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "etc/initrd-release", Mode: TypeReg | 0o644, Data: []byte("x")},
		{Name: "bin", Mode: TypeSymlink | 0o777, Data: []byte("usr/bin")},
	} {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--no-absolute-filenames", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil || string(b) != "#!/bin/sh\necho hi\n" {
		t.Errorf("init = %q, %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "init"))
	if fi == nil || fi.Mode().Perm() != 0o755 || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("init info = %v, want mode 0755 mtime 1700000000", fi)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin")); err != nil || l != "usr/bin" {
		t.Errorf("bin link = %q, %v", l, err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
}
