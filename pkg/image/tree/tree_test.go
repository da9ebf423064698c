package tree

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteDir(t *testing.T) {
	tr := Tree{}
	tr.Data("etc/os-release", 0o644, []byte("NAME=keso\n"))
	tr.Dir("tmp", 0o777|fs.ModeSticky)
	tr.Symlink("sbin/init", "../usr/sbin/keso-init")
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("bin"), 0o600)
	tr.Copy("usr/sbin/keso-init", 0o755, src)
	if _, ok := tr["usr/sbin"]; !ok {
		t.Error("parent usr/sbin not implied")
	}
	dir := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	if err := tr.WriteDir(dir, epoch); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"tmp": fs.ModeDir | 0o777 | fs.ModeSticky, "usr/sbin/keso-init": 0o755, "etc/os-release": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
		if !fi.ModTime().Equal(epoch) {
			t.Errorf("%s mtime = %v, want %v", p, fi.ModTime(), epoch)
		}
	}
	fi, err := os.Lstat(filepath.Join(dir, "sbin/init"))
	if err != nil || fi.ModTime().Unix() != epoch.Unix() {
		t.Errorf("symlink time = %v, %v", fi, err)
	}
	if sz, _ := tr.Size(); sz != int64(len("NAME=keso\n")+3) {
		t.Errorf("Size = %d", sz)
	}
}
