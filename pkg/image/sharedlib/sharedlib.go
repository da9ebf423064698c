// Package sharedlib finds the shared libraries a dynamically linked ELF
// program needs, so that the builder can ship a Debian binary (such as
// wpa_supplicant) with exactly the libraries it loads and nothing else.
//
// Closure reads the program's DT_NEEDED entries and its program
// interpreter (PT_INTERP), looks each soname up in the multiarch library
// folders of one or more unpacked Debian package trees, the way glibc's
// loader would in the target root (lib/<triplet>, usr/lib/<triplet>, lib,
// usr/lib), and follows the libraries' own DT_NEEDED entries until nothing
// new is needed. A soname found nowhere is an error that names the library
// and who needs it, so a profile author knows which package to add.
package sharedlib

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File is one file to ship: Dest is its path in the target root (relative,
// no leading slash); Source is the real file on the host (symlinks in the
// package trees are resolved).
type File struct {
	Dest   string
	Source string
	// NeededBy names the first object that needed it ("" for the program).
	NeededBy string
}

// Result is a program's closure.
type Result struct {
	// Interp is the program interpreter's path in the target root
	// ("lib/ld-linux-aarch64.so.1"), "" for a static program.
	Interp string
	// Libs are the libraries by the path they are found at in the target
	// root's search folders, sorted by Dest. The interpreter is among them
	// under its multiarch path when a package tree has it there.
	Libs []File
}

// Triplet is the Debian multiarch triplet for a Debian architecture.
func Triplet(debArch string) (string, error) {
	switch debArch {
	case "amd64":
		return "x86_64-linux-gnu", nil
	case "arm64":
		return "aarch64-linux-gnu", nil
	case "armhf":
		return "arm-linux-gnueabihf", nil
	}
	return "", fmt.Errorf("no multiarch triplet for Debian architecture %q (want amd64, arm64 or armhf)", debArch)
}

// SearchDirs are the folders (relative to a root) glibc searches for a
// Debian system of triplet, in order.
func SearchDirs(triplet string) []string {
	return []string{"lib/" + triplet, "usr/lib/" + triplet, "lib", "usr/lib"}
}

// Closure computes what program (a host path) needs. trees are unpacked
// package roots searched in order; triplet selects the multiarch folders.
func Closure(program string, trees []string, triplet string) (Result, error) {
	dirs := SearchDirs(triplet)
	var res Result
	interp, err := interpreter(program)
	if err != nil {
		return res, err
	}
	res.Interp = strings.TrimPrefix(interp, "/")

	seen := map[string]bool{}
	// runpath: the DT_RUNPATH folders of the object that needs soname
	// (glibc searches them first, for that object's own DT_NEEDED only).
	type item struct {
		soname, by string
		runpath    []string
	}
	queue := []item{}
	needs, runpath, err := needed(program)
	if err != nil {
		return res, err
	}
	for _, n := range needs {
		queue = append(queue, item{n, filepath.Base(program), runpath})
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if seen[it.soname] {
			continue
		}
		seen[it.soname] = true
		dest, src, err := find(it.soname, trees, append(it.runpath, dirs...))
		if err != nil {
			return res, fmt.Errorf("%s needs %s: %w", it.by, it.soname, err)
		}
		res.Libs = append(res.Libs, File{Dest: dest, Source: src, NeededBy: it.by})
		more, rp, err := needed(src)
		if err != nil {
			return res, err
		}
		for _, n := range more {
			if !seen[n] {
				queue = append(queue, item{n, it.soname, rp})
			}
		}
	}
	if res.Interp != "" && !seen[path.Base(res.Interp)] {
		// The interpreter is needed even when no DT_NEEDED names it.
		dest, src, err := find(path.Base(res.Interp), trees, dirs)
		if err != nil {
			return res, fmt.Errorf("%s's interpreter %s: %w", filepath.Base(program), interp, err)
		}
		res.Libs = append(res.Libs, File{Dest: dest, Source: src, NeededBy: filepath.Base(program)})
	}
	sort.Slice(res.Libs, func(i, j int) bool { return res.Libs[i].Dest < res.Libs[j].Dest })
	return res, nil
}

// ErrNotFound is wrapped when a soname is in none of the trees.
var ErrNotFound = errors.New("not found")

// find looks soname up in every tree's search folders.
func find(soname string, trees, dirs []string) (dest, src string, err error) {
	for _, d := range dirs {
		for _, t := range trees {
			p := filepath.Join(t, d, soname)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			real, err := resolve(t, p)
			if err != nil {
				return "", "", err
			}
			return d + "/" + soname, real, nil
		}
	}
	return "", "", fmt.Errorf("%w in %s of the unpacked packages (%s); add the Debian package that ships it to the profile",
		ErrNotFound, strings.Join(dirs, ", "), strings.Join(trees, ", "))
}

// resolve follows symlinks inside tree root: absolute link targets are
// taken relative to the tree, as they would be in the target root.
func resolve(root, p string) (string, error) {
	for range 16 {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return p, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		if filepath.IsAbs(target) {
			p = filepath.Join(root, target)
		} else {
			p = filepath.Join(filepath.Dir(p), target)
		}
	}
	return "", fmt.Errorf("resolve %s: too many symlinks", p)
}

func interpreter(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read PT_INTERP of %s: %w", p, err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}

// needed returns p's DT_NEEDED sonames and its DT_RUNPATH folders,
// relative to the target root (absolute entries only: $ORIGIN is not
// followed).
func needed(p string) (libs, runpath []string, err error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	libs, err = f.ImportedLibraries()
	if err != nil {
		return nil, nil, fmt.Errorf("read DT_NEEDED of %s: %w", p, err)
	}
	rps, err := f.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, nil, fmt.Errorf("read DT_RUNPATH of %s: %w", p, err)
	}
	for _, rp := range rps {
		for _, d := range strings.Split(rp, ":") {
			if strings.HasPrefix(d, "/") {
				runpath = append(runpath, strings.Trim(path.Clean(d), "/"))
			}
		}
	}
	return libs, runpath, nil
}

// Closures is Closure of several objects (a program and the plugins it
// loads with dlopen, such as sudo's policy plugin and PAM's modules), each
// library once. Interp is the first object's that has one.
func Closures(objects []string, trees []string, triplet string) (Result, error) {
	var all Result
	have := map[string]bool{}
	for _, o := range objects {
		r, err := Closure(o, trees, triplet)
		if err != nil {
			return all, err
		}
		if all.Interp == "" {
			all.Interp = r.Interp
		}
		for _, l := range r.Libs {
			if !have[l.Dest] {
				have[l.Dest] = true
				all.Libs = append(all.Libs, l)
			}
		}
	}
	sort.Slice(all.Libs, func(i, j int) bool { return all.Libs[i].Dest < all.Libs[j].Dest })
	return all, nil
}
