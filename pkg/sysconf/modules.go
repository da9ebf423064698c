package sysconf

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/kmod"
	"github.com/keso-os/keso/pkg/phase"
)

// ModuleLoader loads one kernel module file with parameters; host.Linux
// implements it (finit_module; "already loaded" is not an error).
type ModuleLoader interface {
	LoadModule(path, params string) error
}

// ModuleLoad is one finit_module call.
type ModuleLoad struct {
	At     string // config path of the module that needs it
	Name   string
	File   string // node path, /lib/modules/<release>/…
	Params string // only for the configured module, not its dependencies
}

// KernelModules is what the planner knows about the running kernel.
type KernelModules struct {
	Dir     string          // /lib/modules/<release>
	Deps    kmod.ModuleDeps // modules.dep
	Builtin map[string]bool // modules.builtin
	Loaded  map[string]bool // /proc/modules
	// Params of loaded modules that the config gives parameters for:
	// module → parameter → value from /sys/module/<name>/parameters.
	Params map[string]map[string]string
}

// ParseModuleSpec splits "name key=value …".
func ParseModuleSpec(s string) (name, params string) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "", ""
	}
	return kmod.ModuleName(f[0]), strings.Join(f[1:], " ")
}

// PlanModules lists the loads for the configured modules, dependencies
// first, each module once; modules already loaded are left out.
func PlanModules(specs []string, k KernelModules) ([]ModuleLoad, []Failure) {
	var out []ModuleLoad
	var fails []Failure
	planned := map[string]bool{}
	for i, s := range specs {
		at := fmt.Sprintf("keso.modules[%d]", i)
		name, params := ParseModuleSpec(s)
		switch {
		case k.Loaded[name]:
			if err := checkLoadedParams(name, params, k.Params[name]); err != nil {
				fails = append(fails, Failure{at, err})
			}
			continue
		case k.Builtin[name]:
			if params != "" {
				fails = append(fails, Failure{at, fmt.Errorf("module %s is built into the kernel: its parameters cannot be set at run time; put them on the kernel command line as %s", name, cmdlineParams(name, params))})
			}
			continue
		}
		files, missing := kmod.LoadOrder(k.Deps, []string{name})
		if len(missing) > 0 {
			fails = append(fails, Failure{at, fmt.Errorf("module %s: not in %s/modules.dep (missing: %s); is it part of this image's kernel?", name, k.Dir, strings.Join(missing, ", "))})
			continue
		}
		for _, f := range files {
			n := kmod.ModuleName(f)
			if k.Loaded[n] || planned[n] {
				continue
			}
			planned[n] = true
			l := ModuleLoad{At: at, Name: n, File: path.Join(k.Dir, f)}
			if n == name {
				l.Params = params
			}
			out = append(out, l)
		}
	}
	return out, fails
}

// checkLoadedParams compares wanted parameters with those of a module that
// is already loaded (they can only be given at load time).
func checkLoadedParams(name, params string, cur map[string]string) error {
	var differ []string
	for _, p := range strings.Fields(params) {
		k, v, _ := strings.Cut(p, "=")
		got, ok := cur[k]
		if !ok || !sameParam(got, v) {
			if !ok {
				got = "?"
			}
			differ = append(differ, k+"="+got)
		}
	}
	if len(differ) == 0 {
		return nil
	}
	return fmt.Errorf("module %s is already loaded with %s; parameters apply only when a module is loaded: put %s on the kernel command line", name, strings.Join(differ, " "), cmdlineParams(name, params))
}

// sameParam compares a parameter as the kernel shows it with the
// configured value; booleans read back as Y or N.
func sameParam(got, want string) bool {
	got = strings.TrimSpace(got)
	if got == want {
		return true
	}
	switch got {
	case "Y":
		return want == "1" || strings.EqualFold(want, "y") || strings.EqualFold(want, "true") || want == ""
	case "N":
		return want == "0" || strings.EqualFold(want, "n") || strings.EqualFold(want, "false")
	}
	return false
}

func cmdlineParams(name, params string) string {
	var out []string
	for _, p := range strings.Fields(params) {
		out = append(out, name+"."+p)
	}
	return strings.Join(out, " ")
}

// ReadKernelModules reads the running kernel's module tables through fsys
// (kmod.ReadTables; a kernel without modules.dep has nothing to load), what
// is loaded, and the current parameters of loaded modules that specs give
// parameters for.
func ReadKernelModules(fsys FS, specs []string) (KernelModules, error) {
	t, err := kmod.ReadTables(fsys)
	if err != nil && (t.Dir == "" || !errors.Is(err, fs.ErrNotExist)) { // no release, or a table unreadable
		return KernelModules{Dir: t.Dir}, err
	}
	k := KernelModules{Dir: t.Dir, Deps: t.Deps, Builtin: t.Builtin}
	if k.Loaded, err = kmod.ReadLoaded(fsys); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k.Params = map[string]map[string]string{}
	for _, s := range specs {
		name, params := ParseModuleSpec(s)
		if !k.Loaded[name] || params == "" {
			continue
		}
		cur := map[string]string{}
		for _, p := range strings.Fields(params) {
			key, _, _ := strings.Cut(p, "=")
			if b, err := fsys.ReadFile("/sys/module/" + name + "/parameters/" + key); err == nil {
				cur[key] = strings.TrimSpace(string(b))
			}
		}
		k.Params[name] = cur
	}
	return k, nil
}

// Modules runs the modules phase.
func Modules(cfg *cloudconfig.Config, fsys FS, l ModuleLoader, rec *phase.Recorder) {
	if len(cfg.Keso.Modules) == 0 {
		return
	}
	k, err := ReadKernelModules(fsys, cfg.Keso.Modules)
	if err != nil {
		rec.Fail("keso.modules", err)
		return
	}
	plan, fails := PlanModules(cfg.Keso.Modules, k)
	for _, f := range fails {
		rec.Fail(f.At, f.Err)
	}
	if l == nil && len(plan) > 0 {
		rec.Fail("keso.modules", fmt.Errorf("no module loader (internal error)"))
		return
	}
	failed := map[string]bool{} // config paths whose chain broke
	for _, m := range plan {
		if failed[m.At] {
			continue
		}
		if err := l.LoadModule(fsys.Path(m.File), m.Params); err != nil {
			rec.Fail(m.At, err)
			failed[m.At] = true
			continue
		}
		rec.Change("load", m.Name, m.Params)
	}
}
