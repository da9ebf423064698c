package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
)

// FS reads the node's files; host.FS implements it. Paths are node paths
// (/proc/modules); Path turns one into a path to open.
type FS interface {
	ReadFile(p string) ([]byte, error)
	Stat(p string) (fs.FileInfo, error)
	Path(p string) string
}

// Sys loads one module file with parameters; host.Linux implements it
// (finit_module; "already loaded" is not an error).
type Sys interface {
	LoadModule(path, params string) error
}

// ErrNotFound is wrapped by errors for a name that is neither a module in
// modules.dep, an alias in modules.alias, nor built in.
var ErrNotFound = errors.New("module not found")

// Tables are the running kernel's module tables.
type Tables struct {
	Dir     string          // /lib/modules/<release>
	Deps    ModuleDeps      // modules.dep
	Aliases Aliases         // modules.alias (absent before keso 0.2: empty)
	Builtin map[string]bool // modules.builtin
}

// ReadTables reads the tables of the running kernel under fsys (its
// release from /proc/sys/kernel/osrelease); see ReadTablesAt.
func ReadTables(fsys FS) (Tables, error) {
	rel, err := fsys.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return Tables{}, fmt.Errorf("kernel release: %w", err)
	}
	return ReadTablesAt(fsys, strings.TrimSpace(string(rel)))
}

// ReadTablesAt reads the module tables of kernel release under fsys: the
// one reader of /lib/modules/<release> (the initrd, the agent's config
// phase, keso check and the loader all use it). A missing modules.alias or
// modules.builtin leaves that table empty; a missing modules.dep is an
// error wrapping fs.ErrNotExist (nothing could be loaded) with the other
// tables read.
func ReadTablesAt(fsys FS, release string) (Tables, error) {
	t := Tables{Dir: "/lib/modules/" + release, Builtin: map[string]bool{}}
	if b, err := fsys.ReadFile(t.Dir + "/modules.builtin"); err == nil {
		t.Builtin = ParseBuiltin(b)
	}
	if b, err := fsys.ReadFile(t.Dir + "/modules.alias"); err == nil {
		if t.Aliases, err = ParseModulesAlias(bytes.NewReader(b)); err != nil {
			return t, fmt.Errorf("parse %s/modules.alias: %w", t.Dir, err)
		}
	}
	dep, err := fsys.ReadFile(t.Dir + "/modules.dep")
	if err != nil {
		return t, fmt.Errorf("read module dependencies: %w", err)
	}
	if t.Deps, err = ParseModulesDep(bytes.NewReader(dep)); err != nil {
		return t, fmt.Errorf("parse %s/modules.dep: %w", t.Dir, err)
	}
	return t, nil
}

// Load is one module file to load.
type Load struct {
	Name   string
	File   string // node path: Dir + "/" + the modules.dep path
	Params string // only for the module asked for, not its dependencies
}

// Step is what loading one name takes: the files to load, dependencies
// first, without the loaded ones; Builtin names a module that needs no
// loading because it is built in (or already loaded).
type Step struct {
	Loads   []Load
	Builtin []string
}

// Plan resolves name, a module name or an alias the kernel asks for
// (rtnl-link-veth, fs-overlay, net-pf-16-proto-12, ipt_MASQUERADE, …), to
// what has to be loaded; loaded holds the loaded modules (/proc/modules).
// An alias may stand for several modules; all are planned. A name nothing
// knows is an error wrapping ErrNotFound.
func (t Tables) Plan(name, params string, loaded map[string]bool) (Step, error) {
	var st Step
	mod := ModuleName(name)
	var mods []string
	switch {
	case loaded[mod] || t.Builtin[mod]:
		st.Builtin = append(st.Builtin, mod)
		return st, nil
	case t.Deps[mod].Path != "":
		mods = []string{mod}
	default:
		mods = t.Aliases.Lookup(name)
	}
	if len(mods) == 0 {
		return st, fmt.Errorf("%s: %w in %s (modules.dep, modules.alias, modules.builtin): is it in this image's kernel and the profile's modules list?", name, ErrNotFound, t.Dir)
	}
	planned := map[string]bool{}
	for _, m := range mods {
		if loaded[m] || t.Builtin[m] {
			st.Builtin = append(st.Builtin, m)
			continue
		}
		files, missing := LoadOrder(t.Deps, []string{m})
		if len(missing) > 0 {
			return st, fmt.Errorf("%s: module %s needs %s, which modules.dep does not list: %w", name, m, strings.Join(missing, ", "), ErrNotFound)
		}
		for _, f := range files {
			n := ModuleName(f)
			if loaded[n] || planned[n] {
				continue
			}
			planned[n] = true
			l := Load{Name: n, File: path.Join(t.Dir, f)}
			if n == m {
				l.Params = params
			}
			st.Loads = append(st.Loads, l)
		}
	}
	return st, nil
}

// Loader loads modules by name or alias with their dependencies, skipping
// loaded ones. It reads the tables once; /proc/modules at every load.
type Loader struct {
	FS  FS
	Sys Sys

	once   sync.Once
	tables Tables
	err    error
}

// NewLoader returns a Loader reading fsys and loading through sys.
func NewLoader(fsys FS, sys Sys) *Loader { return &Loader{FS: fsys, Sys: sys} }

// Tables returns the kernel's module tables, read on first use.
func (l *Loader) Tables() (Tables, error) {
	l.once.Do(func() { l.tables, l.err = ReadTables(l.FS) })
	return l.tables, l.err
}

// Loaded reads /proc/modules (empty when unreadable).
func (l *Loader) Loaded() map[string]bool {
	m, _ := ReadLoaded(l.FS)
	return m
}

// ReadLoaded reads /proc/modules under fsys: the loaded modules' names
// (empty, with the read error, when it cannot be read).
func ReadLoaded(fsys interface{ ReadFile(string) ([]byte, error) }) (map[string]bool, error) {
	b, err := fsys.ReadFile("/proc/modules")
	return ParseLoaded(b), err
}

// Load loads name (a module or an alias) and what it needs (the seam
// k3s.Prepare and the agent use).
func (l *Loader) Load(name string) error { return l.LoadWith(name, "") }

// LoadWith is Load with parameters for the named module.
func (l *Loader) LoadWith(name, params string) error {
	_, err := l.Apply(name, params, false)
	return err
}

// Apply plans name and, unless dryRun, loads the files in order. It
// returns the plan. A name the tables do not know is fine when the kernel
// has it built in (/sys/module/<name>), as on kernels whose modules.builtin
// is not shipped.
func (l *Loader) Apply(name, params string, dryRun bool) (Step, error) {
	t, terr := l.Tables()
	st, err := t.Plan(name, params, l.Loaded())
	if err != nil {
		if _, serr := l.FS.Stat("/sys/module/" + ModuleName(name)); serr == nil {
			return Step{Builtin: []string{ModuleName(name)}}, nil
		}
		if terr != nil {
			return st, fmt.Errorf("load module %s: %w", name, terr)
		}
		return st, fmt.Errorf("load module %w", err)
	}
	if dryRun {
		return st, nil
	}
	for _, ld := range st.Loads {
		if err := l.Sys.LoadModule(l.FS.Path(ld.File), ld.Params); err != nil && !errors.Is(err, fs.ErrExist) {
			return st, fmt.Errorf("load module %s (for %s): %w", ld.Name, name, err)
		}
	}
	return st, nil
}
