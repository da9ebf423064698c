package sshd

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

const devptsChildEnv = "KESO_SSHD_TEST_DEVPTS"

// TestEnsureDevpts: on a node /dev is a bare devtmpfs; the server mounts
// devpts so that PTYs work. Run in a private mount namespace where
// /dev/pts is unmounted first.
func TestEnsureDevpts(t *testing.T) {
	if os.Getenv(devptsChildEnv) != "" {
		for syscall.Unmount("/dev/pts", syscall.MNT_DETACH) == nil {
		}
		if _, _, err := (host.Linux{}).OpenPTY(); err == nil {
			t.Log("note: a PTY opened even without devpts on /dev/pts")
		}
		mounted, err := host.Linux{}.EnsureDevpts()
		if err != nil || !mounted {
			t.Fatalf("EnsureDevpts without devpts: mounted %v, %v; want a mount", mounted, err)
		}
		m, s, err := host.Linux{}.OpenPTY()
		if err != nil {
			t.Fatalf("OpenPTY after EnsureDevpts: %v", err)
		}
		if !strings.HasPrefix(s.Name(), "/dev/pts/") {
			t.Errorf("pty slave %s, want /dev/pts/N", s.Name())
		}
		m.Close()
		s.Close()
		if mounted, err := (host.Linux{}).EnsureDevpts(); err != nil || mounted {
			t.Errorf("EnsureDevpts again: mounted %v, %v; want no second mount", mounted, err)
		}
		return
	}
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: mounting devpts needs root (CI runs as root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEnsureDevpts$", "-test.v")
	cmd.Env = append(os.Environ(), devptsChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child in a new mount namespace: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}
