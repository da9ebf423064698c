package host

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SwitchRoot makes newRoot the root file system and executes init in it, the
// way switch_root(8) does: the API file systems (/dev, /proc, /sys, /run)
// are moved under newRoot, newRoot is moved onto /, the process chroots into
// it and execs init with argv and env. The initramfs contents are left in
// place (they are small and freed by nobody anyway). It returns only on
// failure.
func (Linux) SwitchRoot(newRoot, init string, argv, env []string) error {
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		dst := filepath.Join(newRoot, m)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("switch root: create %s: %w", dst, err)
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch root: move %s to %s: %w", m, dst, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: chdir %s: %w", newRoot, err)
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot %s: %w", newRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: chdir /: %w", err)
	}
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch root: exec %s: %w", init, err)
	}
	return nil
}

// Exec replaces the current process with path.
func (Linux) Exec(path string, argv, env []string) error {
	if err := unix.Exec(path, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}
