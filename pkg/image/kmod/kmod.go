// Package kmod resolves kernel module sets for an image. Debian's kernel
// packages carry no modules.dep (depmod runs at install time), so the
// dependency graph is read from each module's ELF .modinfo section
// ("depends=", "alias="), and depmod-compatible modules.dep and
// modules.alias files are written for the modules that are shipped (the
// node's pkg/kmod reads them, /sbin/modprobe among others).
package kmod

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Name normalises a module name: dashes become underscores, ".ko" is dropped.
func Name(s string) string {
	s = strings.TrimSuffix(filepath.Base(s), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Tree is the module tree of one kernel (lib/modules/<kver>).
type Tree struct {
	Dir     string            // lib/modules/<kver>
	Path    map[string]string // module name -> path relative to Dir
	Deps    map[string][]string
	Aliases map[string][]string // module name -> its "alias=" patterns
	Builtin map[string]bool
}

// Open scans dir (lib/modules/<kver>) and reads every module's dependencies.
func Open(dir string) (*Tree, error) {
	t := &Tree{Dir: dir, Path: map[string]string{}, Deps: map[string][]string{}, Aliases: map[string][]string{}, Builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		n := Name(p)
		t.Path[n] = filepath.ToSlash(rel)
		deps, aliases, err := modinfo(p)
		if err != nil {
			return err
		}
		t.Deps[n], t.Aliases[n] = deps, aliases
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan modules in %s: %w", dir, err)
	}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if l := strings.TrimSpace(s.Text()); l != "" {
				t.Builtin[Name(l)] = true
			}
		}
		f.Close()
	}
	return t, nil
}

// modinfo reads a module's dependencies and aliases from its .modinfo
// section.
func modinfo(path string) (deps, aliases []string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil, nil
	}
	b, err := sec.Data()
	if err != nil {
		return nil, nil, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "depends="); ok {
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					deps = append(deps, Name(d))
				}
			}
		}
		if v, ok := strings.CutPrefix(kv, "alias="); ok && v != "" && !strings.ContainsAny(v, " \t\n") {
			aliases = append(aliases, v)
		}
	}
	return deps, aliases, nil
}

// Set is a resolved module set.
type Set struct {
	// Order lists every module of the closure, dependencies before dependents
	// (a valid load order).
	Order []string
	// Requested lists the requested names that are modules (built-ins dropped).
	Requested []string
	// Builtin lists requested names built into the kernel.
	Builtin []string
}

// Resolve computes the transitive closure of names. A name that is neither a
// module nor built in is an error naming the kernel.
func (t *Tree) Resolve(names []string) (*Set, error) {
	s := &Set{}
	state := map[string]int{} // 1 visiting, 2 done
	var missing []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		deps := slices.Clone(t.Deps[n])
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := t.Path[d]; !ok {
				if t.Builtin[d] {
					continue
				}
				return fmt.Errorf("module %s depends on %s, which is not in %s", n, d, t.Dir)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		s.Order = append(s.Order, n)
		return nil
	}
	for _, raw := range names {
		n := Name(raw)
		if _, ok := t.Path[n]; !ok {
			if t.Builtin[n] {
				s.Builtin = append(s.Builtin, n)
				continue
			}
			missing = append(missing, n)
			continue
		}
		s.Requested = append(s.Requested, n)
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("modules %s are neither modules nor built into the kernel in %s (wrong kernel flavour? drop them from the profile)", strings.Join(missing, ", "), t.Dir)
	}
	return s, nil
}

// ModulesDep renders modules.dep for the set in depmod's format: each
// module's line lists its full dependency closure, the ones to load last
// first (modprobe loads the list from the end, then the module).
func (t *Tree) ModulesDep(s *Set) []byte {
	var b strings.Builder
	paths := slices.Clone(s.Order)
	sort.Slice(paths, func(i, j int) bool { return t.Path[paths[i]] < t.Path[paths[j]] })
	pos := map[string]int{}
	for i, n := range s.Order {
		pos[n] = i
	}
	for _, n := range paths {
		closure := t.closure(n)
		sort.Slice(closure, func(i, j int) bool { return pos[closure[i]] > pos[closure[j]] })
		b.WriteString(t.Path[n] + ":")
		for _, d := range closure {
			b.WriteString(" " + t.Path[d])
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func (t *Tree) closure(n string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(string)
	walk = func(m string) {
		for _, d := range t.Deps[m] {
			if _, ok := t.Path[d]; !ok || seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, d)
			walk(d)
		}
	}
	walk(n)
	return out
}

// ModulesAlias renders modules.alias for the set in depmod's format
// ("alias <pattern> <module>"), sorted by module, then in .modinfo order.
func (t *Tree) ModulesAlias(s *Set) []byte {
	var b strings.Builder
	b.WriteString("# Aliases extracted from modules themselves.\n")
	mods := slices.Clone(s.Order)
	sort.Strings(mods)
	for _, n := range mods {
		for _, a := range t.Aliases[n] {
			b.WriteString("alias " + a + " " + n + "\n")
		}
	}
	return []byte(b.String())
}
