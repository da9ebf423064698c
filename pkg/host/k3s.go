package host

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MakeRShared makes the mount at path, and every mount below it, shared
// (mount --make-rshared path), so that mounts made by k3s and its pods
// propagate.
func (Linux) MakeRShared(path string) error {
	if err := unix.Mount("", path, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s rshared: %w", path, err)
	}
	return nil
}

// StartService starts a long-running service (k3s) with exactly env, in
// its own process group, with stdout and stderr to out (nil: discarded).
// The caller waits for it with cmd.Wait.
func (Linux) StartService(argv, env []string, out io.Writer) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// k3s's children (containerd) inherit out and outlive k3s; when out is
	// not a file, Wait must not wait for them to close it.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return cmd, nil
}
