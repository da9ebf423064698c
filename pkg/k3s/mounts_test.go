package k3s

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keso-os/keso/pkg/check"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

const mountChildEnv = "KESO_K3S_TEST_MOUNT_ROOT"

// TestPrepareRealMounts runs Prepare with the real host.Linux: cgroup2 is
// really mounted and the root really made rshared, in a private mount
// namespace (a re-executed test process) so the machine is not touched.
func TestPrepareRealMounts(t *testing.T) {
	if root := os.Getenv(mountChildEnv); root != "" {
		prepareInNamespace(t, root)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: mounting needs root (CI runs as root)")
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrepareRealMounts$", "-test.v")
	cmd.Env = append(os.Environ(), mountChildEnv+"="+root)
	// Go makes / private recursively in the new namespace before exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child in a new mount namespace: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func prepareInNamespace(t *testing.T, root string) {
	if err := syscall.Mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", root, err)
	}
	fsys := host.FS{Root: root}
	// What the node's own mountinfo would say before Prepare: / private.
	fsys.WriteFileAtomic("/proc/self/mountinfo", []byte("22 1 7:0 / / ro,relatime - squashfs /dev/vda2 ro\n"), 0o644)
	fsys.WriteFileAtomic(Binary, []byte("#!/bin/sh\n"), 0o755)
	rec := phase.NewRecorder("k3s", os.Stderr, nil)
	if err := Prepare(fsys, host.Linux{}, nil, Plan(cloudconfig.Config{}), rec); err != nil {
		t.Fatal(err)
	}
	if rep := rec.Done(); !rep.OK() {
		t.Fatalf("Prepare failures: %+v", rep.Failures)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := check.ParseMountInfo(string(b))
	if err != nil {
		t.Fatal(err)
	}
	cg, ok := check.Containing(mounts, filepath.Join(root, "sys/fs/cgroup"))
	if !ok || cg.FSType != "cgroup2" || cg.MountPoint != filepath.Join(root, "sys/fs/cgroup") {
		t.Errorf("cgroup2 mount: got %+v, want cgroup2 on %s/sys/fs/cgroup", cg, root)
	}
	if _, err := fsys.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		t.Errorf("cgroup2 mounted but %v", err)
	}
	for _, p := range []string{root, filepath.Join(root, "sys/fs/cgroup")} {
		m, _ := check.Containing(mounts, p)
		if !isShared(mounts, p) {
			t.Errorf("%s after make-rshared: propagation %v, want shared", p, m.Optional)
		}
	}
}
