package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// FS is the file system under Root. Every path given to its methods is
// absolute inside the node ("/etc/hostname") and is resolved under Root, so
// the same code writes the real /etc at boot (Root "/") and a t.TempDir() in
// tests. Paths cannot climb out of Root with "..".
type FS struct {
	Root string
}

// Path returns where p lives on the host.
func (f FS) Path(p string) string {
	clean := filepath.Clean("/" + p) // "/../x" cleans to "/x"
	if f.Root == "" || f.Root == "/" {
		return clean
	}
	return filepath.Join(f.Root, clean)
}

// ReadFile reads the file at p.
func (f FS) ReadFile(p string) ([]byte, error) {
	b, err := os.ReadFile(f.Path(p))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// WriteFileAtomic writes data to p through a temporary file in the same
// directory, fsyncs it, sets mode, and renames it over p, so that a reader
// (or a power cut) sees the old or the new content, never a mix. Missing
// parent directories are created with mode 0755.
func (f FS) WriteFileAtomic(p string, data []byte, mode fs.FileMode) error {
	dst := f.Path(p)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: chmod: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: fsync: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("write %s: rename: %w", p, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !strings.Contains(err.Error(), "invalid argument") {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// MkdirAll creates p and its parents.
func (f FS) MkdirAll(p string, mode fs.FileMode) error {
	if err := os.MkdirAll(f.Path(p), mode); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// Chown sets the owner of p (numeric ids).
func (f FS) Chown(p string, uid, gid int) error {
	if err := os.Lchown(f.Path(p), uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// Chmod sets the mode of p.
func (f FS) Chmod(p string, mode fs.FileMode) error {
	if err := os.Chmod(f.Path(p), mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// Stat describes p (following symlinks).
func (f FS) Stat(p string) (fs.FileInfo, error) {
	fi, err := os.Stat(f.Path(p))
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fi, nil
}

// ReadDir lists p.
func (f FS) ReadDir(p string) ([]fs.DirEntry, error) {
	es, err := os.ReadDir(f.Path(p))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p, err)
	}
	return es, nil
}

// Remove deletes p (a file or an empty directory).
func (f FS) Remove(p string) error {
	if err := os.Remove(f.Path(p)); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// Rename moves oldp to newp.
func (f FS) Rename(oldp, newp string) error {
	if err := os.Rename(f.Path(oldp), f.Path(newp)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", oldp, newp, err)
	}
	return nil
}

// Symlink creates p pointing at target (target is stored as given).
func (f FS) Symlink(target, p string) error {
	if err := os.Symlink(target, f.Path(p)); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", p, target, err)
	}
	return nil
}

// ErrLocked is TryLock's answer when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// TryLock takes an exclusive advisory lock (flock) on the file at p,
// creating it, without waiting: it fails with ErrLocked when another
// process holds it. The lock goes when release is called or the process
// ends, however it ends.
func (f FS) TryLock(p string) (release func(), err error) {
	dst := f.Path(p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	fd, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fd.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", p, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { fd.Close() }, nil
}
