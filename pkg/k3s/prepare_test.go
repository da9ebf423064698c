package k3s

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/check"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

type fakeSystem struct {
	root   string
	calls  []string
	failed map[string]error
}

func (f *fakeSystem) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, "mount "+fstype+" "+strings.TrimPrefix(target, f.root))
	return f.failed["mount"]
}

func (f *fakeSystem) MakeRShared(path string) error {
	p := strings.TrimPrefix(path, f.root)
	if p == "" {
		p = "/"
	}
	f.calls = append(f.calls, "rshared "+p)
	return nil
}

type fakeModules struct {
	loaded []string
	fail   map[string]bool
}

func (f *fakeModules) Load(name string) error {
	if f.fail[name] {
		return errors.New(name + ": not found in modules.dep")
	}
	f.loaded = append(f.loaded, name)
	return nil
}

func nodeRoot(t *testing.T, files map[string]string) host.FS {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return host.FS{Root: root}
}

func TestPrepare(t *testing.T) {
	fsys := nodeRoot(t, map[string]string{
		"/proc/sys/kernel/osrelease": "6.1.0-test\n",
		"/proc/modules":              "overlay 1 0 - Live 0x0\n",
		"/proc/self/mountinfo":       "22 1 7:0 / / ro,relatime - squashfs /dev/vda2 ro\n",
		Binary:                       "#!/bin/sh\n",
	})
	h := Plan(cloudconfig.Config{Keso: cloudconfig.System{
		ServerURL: "https://a:6443",
		K3s:       &cloudconfig.K3s{ServerURL: "https://b:6443", TokenFile: "/keso/state/k3s-token"},
	}})
	sys := &fakeSystem{root: fsys.Root}
	// nf_tables is not there: the legacy family is loaded instead; one
	// optional module is missing.
	mods := &fakeModules{fail: map[string]bool{"nf_tables": true, "xt_statistic": true}}
	var log bytes.Buffer
	rec := phase.NewRecorder("k3s", &log, nil)
	if err := Prepare(fsys, sys, mods, h, rec); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	rep := rec.Done()

	wantLoaded := append(append([]string{"veth", "bridge", "br_netfilter", "nf_conntrack", "vxlan", "nft_compat", "nft_chain_nat"},
		check.NetfilterFamilies["legacy"]...), "nf_nat")
	if got := strings.Join(mods.loaded[:len(wantLoaded)], " "); got != strings.Join(wantLoaded, " ") {
		t.Errorf("modules loaded: got %v, want %v first (overlay is already loaded)", mods.loaded, wantLoaded)
	}
	if got, want := strings.Join(sys.calls, "; "), "mount cgroup2 /sys/fs/cgroup; rshared /"; got != want {
		t.Errorf("system calls: got %q, want %q", got, want)
	}
	conf, err := fsys.ReadFile(ConfigFile)
	if err != nil || !bytes.Equal(conf, h.ConfigYAML) {
		t.Errorf("%s: got %q (%v), want the plan's config", ConfigFile, conf, err)
	}
	if fi, _ := fsys.Stat(ConfigFile); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode: %v, want 0600 (it holds the token)", ConfigFile, fi)
	}
	if _, err := fsys.Stat(DataDir + "/k3s"); err != nil {
		t.Errorf("%s/k3s not created: %v", DataDir, err)
	}
	var fails []string
	for _, f := range rep.Failures {
		fails = append(fails, f.Path)
	}
	// The server URL conflict (a plan problem) and the missing token file.
	if got, want := strings.Join(fails, ","), "keso.server_url,keso.k3s.token_file"; got != want {
		t.Errorf("failures: got %q, want %q\n%s", got, want, log.String())
	}
	for _, line := range []string{"keso: k3s: load vxlan", "keso: k3s: mount /sys/fs/cgroup (cgroup2)", "keso: k3s: make-rshared /",
		"keso: k3s: write /etc/rancher/k3s/config.yaml (agent)", "keso: k3s: skip xt_statistic"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("console log lacks %q:\n%s", line, log.String())
		}
	}

	// Second boot: everything in place, nothing changes.
	fsys.WriteFileAtomic("/proc/modules", []byte(strings.Join(append(append([]string{"overlay"}, mods.loaded...), ""), " 1 0 - Live 0x0\n")), 0o644)
	fsys.WriteFileAtomic("/sys/fs/cgroup/cgroup.controllers", []byte("cpu memory pids\n"), 0o644)
	fsys.WriteFileAtomic("/proc/self/mountinfo", []byte("22 1 7:0 / / ro,relatime shared:1 - squashfs /dev/vda2 ro\n"), 0o644)
	fsys.WriteFileAtomic("/keso/state/k3s-token", []byte("secret\n"), 0o600)
	sys2, mods2 := &fakeSystem{root: fsys.Root}, &fakeModules{fail: map[string]bool{"nf_tables": true, "xt_statistic": true}}
	rec2 := phase.NewRecorder("k3s", nil, nil)
	if err := Prepare(fsys, sys2, mods2, h, rec2); err != nil {
		t.Fatal(err)
	}
	rep2 := rec2.Done()
	var changes []string
	for _, c := range rep2.Changes {
		changes = append(changes, c.Action+" "+c.Target)
	}
	// Only the optional module that cannot load is tried again.
	if len(sys2.calls) != 0 || strings.Join(changes, ",") != "skip xt_statistic" || len(rep2.Failures) != 1 {
		t.Errorf("second run: calls %v, changes %v, failures %v; want nothing but the skipped optional module and the plan problem", sys2.calls, changes, rep2.Failures)
	}
}

func TestPrepareWithoutK3s(t *testing.T) {
	fsys := nodeRoot(t, map[string]string{"/proc/self/mountinfo": "22 1 7:0 / / rw shared:1 - ext4 /dev/vda2 rw\n",
		"/sys/fs/cgroup/cgroup.controllers": "cpu memory pids\n"})
	rec := phase.NewRecorder("k3s", nil, nil)
	err := Prepare(fsys, &fakeSystem{}, nil, Plan(cloudconfig.Config{}), rec)
	if err == nil || !strings.Contains(err.Error(), "k3s binary missing at /usr/local/bin/k3s") {
		t.Errorf("Prepare without the binary: got %v, want the missing-binary error", err)
	}
	if rep := rec.Done(); rep.OK() {
		t.Errorf("report: %+v, want the failure recorded", rep)
	}
}
