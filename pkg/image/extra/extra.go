// Package extra adds a user's own directory trees to keso's root file
// system (keso-build --extra DIR, a profile's extra: list). Scan reads a
// host folder into a tree.Tree; Merge, a pure planner, checks each entry
// against the image keso builds and adds it; tree.WriteDir writes the result
// like the rest of the root (owner root, times = SOURCE_DATE_EPOCH).
//
// The rules (docs/build.md, "Extra trees"):
//
//   - Add, never replace. An extra file or symlink may only take a path the
//     image does not have (neither keso's build, the repo's overlay/, nor an
//     earlier extra tree put anything there), unless it is exactly what is
//     there (same bytes and mode, or the same link target: the same Debian
//     library in the image and in the extra tree's closure). An extra
//     directory may be one the image already has: its content is added, the
//     image's mode stays.
//   - Inside the root. Paths are relative and clean; nothing is written below
//     a symlink (of the image or of an extra), so no file can land outside
//     the root. Symlinks are kept as symlinks, whatever they point to.
//   - Not hidden at boot. Nothing below a directory keso mounts over at boot
//     (/var, /home, /root, /opt, /tmp, /run, /proc, /sys, /dev, /keso/state):
//     it would never be seen.
//   - Not in keso's own folders. Nothing below /lib/modules (modules come
//     from the profile, so modules.dep stays complete), /boot (the upgrade
//     image's kernel and initrd), /usr/share/keso/install (what keso install
//     writes) and /usr/share/keso/keys (trusted release keys: use
//     --sign-key or keso.upgrade.public_keys).
//   - Regular files, directories and symlinks only; permission bits,
//     setuid, setgid and sticky are kept.
package extra

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/image/tree"
)

// Hidden are the root's directories that keso mounts over at boot (tmpfs,
// the state partition, the kernel's file systems): pkg/initrd.LayerPlan and
// the system stage. Extra content below them would never be seen.
var Hidden = []string{"var", "home", "root", "opt", "tmp", "run", "proc", "sys", "dev", "keso/state"}

// Reserved are keso's own folders, below which nothing may be added, and
// why.
var Reserved = []struct{ Dir, Why string }{
	{"lib/modules", "kernel modules come from the profile's modules list (so modules.dep stays complete)"},
	{"boot", "the kernel and initrd of the upgrade image are keso's"},
	{"usr/share/keso/install", "keso install writes exactly what the build put there"},
	{"usr/share/keso/keys", "trusted release keys come from --sign-key, or keso.upgrade.public_keys in the config"},
}

// Tree is one extra tree: the host folder it was read from and its entries
// (paths relative to the folder, as in the root).
type Tree struct {
	Dir     string
	Entries tree.Tree
}

// Scan reads the host folder dir (a symlink to a folder is followed; nothing
// below it is) into a tree: directories, regular files (copied at write
// time) and symlinks, with their permission, setuid, setgid and sticky
// bits. Any other file type is an error naming it.
func Scan(dir string) (*Tree, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("extra tree %s: %w", dir, err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, fmt.Errorf("extra tree %s: %w", dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("extra tree %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("extra tree %s: not a directory (want a folder laid out like the root: usr/local/bin/…, etc/…)", dir)
	}
	t := tree.Tree{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode() & tree.ModeBits
		switch {
		case info.IsDir():
			t[rel] = &tree.Node{Kind: tree.Dir, Mode: mode}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t[rel] = &tree.Node{Kind: tree.Symlink, Mode: 0o777, Target: target}
		case info.Mode().IsRegular():
			t[rel] = &tree.Node{Kind: tree.File, Mode: mode, Source: p}
		default:
			return fmt.Errorf("%s is a %v: only regular files, directories and symlinks can be added (device nodes, FIFOs and sockets cannot)", p, info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("extra tree %s: %w", dir, err)
	}
	return &Tree{Dir: dir, Entries: t}, nil
}

// maxErrors caps how many refusals one error lists.
const maxErrors = 20

// Merge checks every entry of the extra trees, in order, against the image
// and the trees before it, and adds them to image. It changes nothing
// unless every entry passes; the error lists each refused entry with its
// host path, what it collides with and how to fix it.
func Merge(image tree.Tree, extras []*Tree) error {
	union := make(tree.Tree, len(image))
	for p, n := range image {
		union[p] = n
	}
	from := map[string]string{} // path -> host path of the extra entry that added it
	var errs []string
	for _, x := range extras {
		for _, p := range x.Entries.Paths() {
			n := x.Entries[p]
			host := filepath.Join(x.Dir, filepath.FromSlash(p))
			if msg := check(union, from, p, n); msg != "" {
				errs = append(errs, host+": "+msg)
				continue
			}
			if cur, ok := union[p]; ok && (cur.Kind == tree.Dir && n.Kind == tree.Dir || same(cur, n)) {
				continue // merged into the existing directory, whose mode stays; or already there
			}
			for d := path.Dir(p); d != "."; d = path.Dir(d) {
				if _, ok := union[d]; !ok {
					union[d] = &tree.Node{Kind: tree.Dir, Mode: 0o755}
					from[d] = host
				}
			}
			union[p] = n
			from[p] = host
		}
	}
	if len(errs) > 0 {
		more := ""
		if len(errs) > maxErrors {
			more = fmt.Sprintf("\n  … and %d more", len(errs)-maxErrors)
			errs = errs[:maxErrors]
		}
		return fmt.Errorf("extra trees: %d entries refused (see docs/build.md, \"Extra trees\"):\n  %s%s", len(errs), strings.Join(errs, "\n  "), more)
	}
	for p := range from {
		image[p] = union[p]
	}
	return nil
}

// same reports whether an extra entry is what the image already has at its
// path: a file with the same bytes and mode bits, or a symlink with the same
// target (the same Debian library shipped by the image and by an extra
// tree's own closure). Adding it changes nothing, so it is not refused.
func same(cur, n *tree.Node) bool {
	if cur.Kind != n.Kind {
		return false
	}
	switch n.Kind {
	case tree.Symlink:
		return cur.Target == n.Target
	case tree.File:
		if cur.Mode&tree.ModeBits != n.Mode&tree.ModeBits {
			return false
		}
		a, err1 := tree.ReadNode(cur)
		b, err2 := tree.ReadNode(n)
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	}
	return false
}

// check returns why entry p may not be added to union, or "".
func check(union tree.Tree, from map[string]string, p string, n *tree.Node) string {
	if p == "" || p == "." || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Sprintf("path %q is not a clean path inside the root", p)
	}
	for _, h := range Hidden {
		if strings.HasPrefix(p, h+"/") {
			return fmt.Sprintf("/%s is mounted over at boot (tmpfs or the state partition), so /%s would never be seen: put it below /usr (e.g. /usr/local) or /etc, or write it at run time (write_files in the config)", h, p)
		}
	}
	for _, r := range Reserved {
		if strings.HasPrefix(p, r.Dir+"/") {
			return fmt.Sprintf("/%s is keso's own: %s", r.Dir, r.Why)
		}
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		cur, ok := union[d]
		if !ok || cur.Kind == tree.Dir {
			continue
		}
		return fmt.Sprintf("/%s would be written below /%s, which is %s: nothing is written through a symlink or below a file", p, d, describe(cur, from[d]))
	}
	cur, ok := union[p]
	if !ok {
		return ""
	}
	if cur.Kind == tree.Dir && n.Kind == tree.Dir || same(cur, n) {
		return ""
	}
	return fmt.Sprintf("/%s would replace %s: extra trees add files, they never replace the image's (remove it from the extra tree, or use another path)", p, describe(cur, from[p]))
}

// describe names an entry of the union for an error.
func describe(n *tree.Node, host string) string {
	what := map[tree.Kind]string{tree.Dir: "a directory", tree.File: "a file", tree.Symlink: "a symlink", tree.CharDev: "a device node"}[n.Kind]
	if n.Kind == tree.Symlink {
		what += " (-> " + n.Target + ")"
	}
	if host != "" {
		return what + " added by " + host
	}
	return what + " keso's build puts there"
}

// Summary is what one extra tree added, for the build manifest.
type Summary struct {
	Dir     string `json:"dir"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
}

// Add scans each host folder and merges them into image in order (see
// Merge). It returns what each added.
func Add(image tree.Tree, dirs []string) ([]Summary, error) {
	var xs []*Tree
	var errs []error
	for _, d := range dirs {
		x, err := Scan(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		xs = append(xs, x)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := Merge(image, xs); err != nil {
		return nil, err
	}
	var out []Summary
	for _, x := range xs {
		sz, err := x.Entries.Size()
		if err != nil {
			return nil, fmt.Errorf("extra tree %s: %w", x.Dir, err)
		}
		out = append(out, Summary{Dir: x.Dir, Entries: len(x.Entries), Bytes: sz})
	}
	return out, nil
}
