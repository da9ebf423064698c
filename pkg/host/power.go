package host

import (
	"fmt"

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
