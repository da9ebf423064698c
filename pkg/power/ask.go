package power

import (
	"fmt"
	"syscall"
)

// Ask asks the boot agent (PID 1) for an orderly reboot or power-off, by
// the signals it listens for (as busybox init does: SIGINT reboots,
// SIGUSR2 powers off); it stops k3s, syncs and unmounts, then Handles it.
// `keso reboot`, `keso poweroff`, `keso install` and `keso upgrade` use it.
func Ask(a Action) error {
	sig := syscall.SIGINT
	if a == PowerOff {
		sig = syscall.SIGUSR2
	}
	if err := syscall.Kill(1, sig); err != nil {
		return fmt.Errorf("ask init (PID 1) to %s: %w", a, err)
	}
	return nil
}
