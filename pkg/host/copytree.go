package host

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CopyTree copies from (a file, directory or symlink under src) to to
// under f, keeping modes (setuid, setgid and sticky too), numeric owners,
// modification times and symlink targets as they are; files are written
// and synced before their times and modes are set. It returns the bytes
// copied. A missing from is fs.ErrNotExist (wrapped), with nothing
// written. Device nodes, sockets and FIFOs are skipped. The directories
// above to that the copy creates are 0755 and root's, as mkdir -p makes
// them: one of them may be the top of an overlay's upper layer, whose mode
// the merged directory shows (etc-overlay/upper is /etc).
func (f FS) CopyTree(src FS, from, to string) (int64, error) {
	var total int64
	root := src.Path(from)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		dst := f.Path(filepath.Join(to, rel))
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(dst)
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case fi.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			n, err := copyFile(p, dst)
			if err != nil {
				return err
			}
			total += n
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
			if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	// Directories' times last: creating their entries changed them.
	err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		return os.Chtimes(f.Path(filepath.Join(to, rel)), fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		return total, fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return total, nil
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// TreeSums maps every regular file and symlink under p (relative paths) to
// the sha256 of its content or "-> target", for comparing a copy with its
// source. A missing p is fs.ErrNotExist (wrapped).
func (f FS) TreeSums(p string) (map[string]string, error) {
	root := f.Path(p)
	sums := map[string]string{}
	err := filepath.Walk(root, func(q string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, q)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(q)
			if err != nil {
				return err
			}
			sums[rel] = "-> " + t
		case fi.Mode().IsRegular():
			h := sha256.New()
			r, err := os.Open(q)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, r)
			r.Close()
			if err != nil {
				return err
			}
			sums[rel] = fmt.Sprintf("%x", h.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sums of %s: %w", p, err)
	}
	return sums, nil
}
