// Package tree describes a file tree to be written into an image (the root
// squashfs staging folder, the initrd cpio, the ESP). Building a Tree decides
// what goes where; WriteDir and WriteCPIO do it, deterministically: entries
// are sorted, parents are implied, and every time is the one given.
package tree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cpio"
)

// Kind of a node.
type Kind int

// Node kinds.
const (
	Dir Kind = iota
	File
	Symlink
	CharDev
)

// Node is one entry. Files take their bytes from Data or, when Data is nil,
// from the host file Source.
type Node struct {
	Kind         Kind
	Mode         fs.FileMode // permission bits, plus setuid, setgid and sticky
	Data         []byte
	Source       string
	Target       string // symlink target
	Major, Minor uint32 // CharDev
}

// ModeBits are the mode bits a node keeps: permissions, setuid, setgid,
// sticky.
const ModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Tree maps clean relative paths ("usr/bin/keso") to nodes.
type Tree map[string]*Node

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (t Tree) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := t[d]; !ok {
			t[d] = &Node{Kind: Dir, Mode: 0o755}
		}
	}
}

// Dir adds a directory.
func (t Tree) Dir(p string, mode fs.FileMode) {
	p = clean(p)
	t.parents(p)
	t[p] = &Node{Kind: Dir, Mode: mode}
}

// Data adds a file with the given content.
func (t Tree) Data(p string, mode fs.FileMode, b []byte) {
	p = clean(p)
	t.parents(p)
	t[p] = &Node{Kind: File, Mode: mode, Data: b}
}

// Copy adds a file whose content is the host file src.
func (t Tree) Copy(p string, mode fs.FileMode, src string) {
	p = clean(p)
	t.parents(p)
	t[p] = &Node{Kind: File, Mode: mode, Source: src}
}

// Symlink adds a symbolic link.
func (t Tree) Symlink(p, target string) {
	p = clean(p)
	t.parents(p)
	t[p] = &Node{Kind: Symlink, Mode: 0o777, Target: target}
}

// Char adds a character device node.
func (t Tree) Char(p string, mode fs.FileMode, major, minor uint32) {
	p = clean(p)
	t.parents(p)
	t[p] = &Node{Kind: CharDev, Mode: mode, Major: major, Minor: minor}
}

// AddHostDir copies a host directory tree below prefix (regular files keep
// their permission bits; symlinks are kept as links).
func (t Tree) AddHostDir(src, prefix string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		dst := path.Join(prefix, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			t.Dir(dst, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t.Symlink(dst, l)
		case info.Mode().IsRegular():
			t.Copy(dst, info.Mode().Perm(), p)
		default:
			return fmt.Errorf("add %s: unsupported file type %v", p, info.Mode().Type())
		}
		return nil
	})
}

// Paths returns the paths sorted so that parents come before children.
func (t Tree) Paths() []string {
	ps := make([]string, 0, len(t))
	for p := range t {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Size is the total size of file contents.
func (t Tree) Size() (int64, error) {
	var n int64
	for p, nd := range t {
		if nd.Kind != File {
			continue
		}
		if nd.Data != nil {
			n += int64(len(nd.Data))
			continue
		}
		fi, err := os.Stat(nd.Source)
		if err != nil {
			return 0, fmt.Errorf("size of %s (from %s): %w", p, nd.Source, err)
		}
		n += fi.Size()
	}
	return n, nil
}

// WriteDir writes the tree below dir (which must exist) and sets every mtime
// to mtime. Device nodes cannot be created without root and are refused.
func (t Tree) WriteDir(dir string, mtime time.Time) error {
	ps := t.Paths()
	for _, p := range ps {
		n := t[p]
		dst := filepath.Join(dir, filepath.FromSlash(p))
		switch n.Kind {
		case Dir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("stage dir %s: %w", dst, err)
			}
		case File:
			if err := writeFile(dst, n); err != nil {
				return err
			}
		case Symlink:
			os.Remove(dst)
			if err := os.Symlink(n.Target, dst); err != nil {
				return fmt.Errorf("stage symlink %s: %w", dst, err)
			}
		case CharDev:
			return fmt.Errorf("stage %s: device nodes cannot be staged in a folder without root", p)
		}
	}
	// modes and times last, deepest first, so directory times stick
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		n := t[p]
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if n.Kind != Symlink {
			if err := os.Chmod(dst, n.Mode&ModeBits); err != nil {
				return fmt.Errorf("stage chmod %s: %w", dst, err)
			}
		}
		if err := lchtimes(dst, mtime); err != nil {
			return fmt.Errorf("stage times %s: %w", dst, err)
		}
	}
	return os.Chtimes(dir, mtime, mtime)
}

func writeFile(dst string, n *Node) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("stage file %s: %w", dst, err)
	}
	defer f.Close()
	if n.Data != nil {
		if _, err := f.Write(n.Data); err != nil {
			return fmt.Errorf("stage file %s: %w", dst, err)
		}
	} else {
		src, err := os.Open(n.Source)
		if err != nil {
			return fmt.Errorf("stage file %s: %w", dst, err)
		}
		defer src.Close()
		if _, err := io.Copy(f, src); err != nil {
			return fmt.Errorf("stage file %s from %s: %w", dst, n.Source, err)
		}
	}
	return f.Close()
}

// ReadNode returns a file node's content.
func ReadNode(n *Node) ([]byte, error) {
	if n.Data != nil {
		return n.Data, nil
	}
	b, err := os.ReadFile(n.Source)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", n.Source, err)
	}
	return b, nil
}

// WriteCPIO writes the tree as a newc archive owned by root.
func (t Tree) WriteCPIO(w io.Writer, mtime time.Time) error {
	cw := &cpio.Writer{W: w, MTime: mtime.Unix()}
	for _, p := range t.Paths() {
		n := t[p]
		e := cpio.Entry{Name: p, Mode: uint32(n.Mode.Perm())}
		if n.Mode&fs.ModeSticky != 0 {
			e.Mode |= 0o1000
		}
		if n.Mode&fs.ModeSetgid != 0 {
			e.Mode |= 0o2000
		}
		if n.Mode&fs.ModeSetuid != 0 {
			e.Mode |= 0o4000
		}
		switch n.Kind {
		case Dir:
			e.Mode |= cpio.TypeDir
		case File:
			b, err := ReadNode(n)
			if err != nil {
				return err
			}
			e.Mode |= cpio.TypeReg
			e.Data = b
		case Symlink:
			e.Mode = cpio.TypeSymlink | 0o777
			e.Data = []byte(n.Target)
		case CharDev:
			e.Mode |= cpio.TypeChar
			e.RMajor, e.RMinor = n.Major, n.Minor
		}
		if err := cw.Add(e); err != nil {
			return err
		}
	}
	return cw.Close()
}
