package kmod

import (
	"bufio"
	"io"
	"path"
	"strings"
)

// ModuleDeps maps a module name to its modules.dep entry.
type ModuleDeps map[string]ModuleEntry

// ModuleEntry is one line of modules.dep: the module file and the files of
// the modules it needs, as the kernel's depmod orders them (a module's
// dependencies come after it; modprobe loads the list from the end).
type ModuleEntry struct {
	Path string
	Deps []string
}

// ModuleName turns a module file path or a user-given name into the
// canonical module name: no directory, no .ko[.xz|.gz|.zst] suffix, '-'
// replaced by '_'.
func ModuleName(s string) string {
	s = path.Base(strings.TrimSpace(s))
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// ParseModulesDep reads a modules.dep file.
func ParseModulesDep(r io.Reader) (ModuleDeps, error) {
	out := ModuleDeps{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out[ModuleName(file)] = ModuleEntry{Path: strings.TrimSpace(file), Deps: strings.Fields(deps)}
	}
	return out, sc.Err()
}

// ParseModuleList reads /etc/keso/initrd-modules: one name per line, '#'
// starts a comment.
func ParseModuleList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, f := range strings.Fields(line) {
			out = append(out, ModuleName(f))
		}
	}
	return out, sc.Err()
}

// LoadOrder returns the module files to load, dependencies first, each once,
// for the wanted module names; names modules.dep does not know are returned
// in missing (they may be built into the kernel).
func LoadOrder(deps ModuleDeps, want []string) (files []string, missing []string) {
	seen := map[string]bool{}
	var visit func(name string, stack int)
	visit = func(name string, stack int) {
		if seen[name] || stack > 64 {
			return
		}
		seen[name] = true
		e, ok := deps[name]
		if !ok {
			missing = append(missing, name)
			return
		}
		// modules.dep lists the full transitive closure, deepest last.
		for i := len(e.Deps) - 1; i >= 0; i-- {
			visit(ModuleName(e.Deps[i]), stack+1)
		}
		files = append(files, e.Path)
	}
	for _, w := range want {
		visit(ModuleName(w), 0)
	}
	return files, missing
}
