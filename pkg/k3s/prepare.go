package k3s

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/keso-os/keso/pkg/check"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// System is what Prepare changes on the machine; *host.Linux implements it.
// Paths are host paths (host.FS.Path).
type System interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	MakeRShared(path string) error
}

// Modules loads a kernel module by name, with its dependencies (the boot
// agent's module loader, which resolves names through modules.dep).
type Modules interface {
	Load(name string) error
}

// Prepare readies the node for k3s and writes its config, recording every
// change and failure in rec:
//   - loads the modules k3s needs (check.RequiredModules, one of
//     check.NetfilterFamilies, and best-effort check.OptionalModules),
//     skipping those already loaded or built in;
//   - mounts cgroup2 on /sys/fs/cgroup unless it is there;
//   - makes / shared (recursively) unless it is;
//   - creates /var/lib/rancher/k3s and /etc/rancher/k3s;
//   - writes h.ConfigYAML to ConfigFile (mode 0600: it holds the token)
//     when its content differs;
//   - reports h.Problems against their config paths.
//
// It returns an error only when k3s cannot be started at all (no binary).
func Prepare(fsys host.FS, sys System, mods Modules, h Handoff, rec *phase.Recorder) error {
	for _, p := range h.Problems {
		rec.Fail(p.Path, p)
	}
	if mods != nil {
		loadModules(fsys, mods, rec)
	}

	if _, err := fsys.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		if err := sys.Mount("cgroup2", fsys.Path("/sys/fs/cgroup"), "cgroup2", host.MountNoSuid|host.MountNoDev|host.MountNoExec, ""); err != nil {
			rec.Fail("", err)
		} else {
			rec.Change("mount", "/sys/fs/cgroup", "cgroup2")
		}
	}

	mounts, err := check.ReadMountInfo(fsys)
	if err != nil {
		rec.Fail("", fmt.Errorf("read mount propagation: %w", err))
	} else if !isShared(mounts, "/") {
		if err := sys.MakeRShared(fsys.Path("/")); err != nil {
			rec.Fail("", err)
		} else {
			rec.Change("make-rshared", "/", "")
		}
	}

	for _, d := range []string{DataDir + "/k3s", "/etc/rancher/k3s"} {
		if _, err := fsys.Stat(d); err == nil {
			continue
		}
		if err := fsys.MkdirAll(d, 0o755); err != nil {
			rec.Fail("", err)
		} else {
			rec.Change("mkdir", d, "")
		}
	}

	old, err := fsys.ReadFile(ConfigFile)
	if err != nil || !bytes.Equal(old, h.ConfigYAML) {
		if err := fsys.WriteFileAtomic(ConfigFile, h.ConfigYAML, 0o600); err != nil {
			rec.Fail("keso.k3s", err)
		} else {
			rec.Change("write", ConfigFile, h.Role)
		}
	}

	if tf := h.TokenFile; tf != "" {
		if _, err := fsys.Stat(tf); errors.Is(err, fs.ErrNotExist) {
			rec.Fail("keso.k3s.token_file", fmt.Errorf("token file %s does not exist; k3s cannot join without it", tf))
		}
	}

	if _, err := fsys.Stat(h.Argv[0]); err != nil {
		err = fmt.Errorf("k3s binary missing at %s: the image was built without k3s (keso-build --k3s FILE, or the profile's k3s release)", h.Argv[0])
		rec.Fail("", err)
		return err
	}
	return nil
}

func loadModules(fsys host.FS, mods Modules, rec *phase.Recorder) {
	rel := ""
	if b, err := fsys.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rel = strings.TrimSpace(string(b))
	}
	info := check.LoadModuleInfo(fsys, rel)
	usable := func(name string) bool {
		st, _ := info.State(name)
		return st == check.Loaded || st == check.BuiltIn
	}
	load := func(name string) error {
		if usable(name) {
			return nil
		}
		if err := mods.Load(name); err != nil {
			return err
		}
		rec.Change("load", name, "")
		return nil
	}
	for _, m := range check.RequiredModules {
		if err := load(m); err != nil {
			rec.Fail("", fmt.Errorf("module %s (k3s needs it): %w", m, err))
		}
	}
	var tried []string
	ok := false
	for _, fam := range check.NetfilterOrder {
		var errs []string
		for _, m := range check.NetfilterFamilies[fam] {
			if err := load(m); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) == 0 {
			ok = true
			break
		}
		tried = append(tried, fam+": "+strings.Join(errs, "; "))
	}
	if !ok {
		rec.Fail("", fmt.Errorf("no netfilter backend for k3s's iptables: %s", strings.Join(tried, " | ")))
	}
	for _, m := range check.OptionalModules {
		if err := load(m); err != nil {
			rec.Change("skip", m, "optional module not loaded: "+err.Error())
		}
	}
}

func isShared(mounts []check.Mount, p string) bool {
	m, ok := check.Containing(mounts, p)
	if !ok {
		return false
	}
	for _, f := range m.Optional {
		if strings.HasPrefix(f, "shared:") {
			return true
		}
	}
	return false
}
