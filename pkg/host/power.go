package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Reboot syncs the file systems and restarts the machine. It returns only on
// failure.
func (Linux) Reboot() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// PowerOff syncs the file systems and powers the machine off. It returns
// only on failure.
func (Linux) PowerOff() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}

// Sync flushes every file system's dirty data to its device.
func Sync() { unix.Sync() }

// Sync is the package's Sync, for callers that hold a Linux (power.System).
func (Linux) Sync() { Sync() }

// MountInfo reads /proc/self/mountinfo.
func (Linux) MountInfo() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	return string(b), err
}

// RemountReadOnly remounts target read-only (before a reboot).
func (Linux) RemountReadOnly(target string) error {
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	return nil
}

// CtrlAltDelToInit makes ctrl-alt-del a SIGINT to PID 1 instead of an
// immediate reboot, so the boot agent stops k3s and syncs first.
func (Linux) CtrlAltDelToInit() { unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) }
