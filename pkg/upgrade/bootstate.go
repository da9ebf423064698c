package upgrade

import (
	"fmt"

	"github.com/keso-os/keso/pkg/bootloader"
)

// loader is the Upgrader's boot loader: Boot, else systemd-boot on ESP.
func (u *Upgrader) loader() bootloader.Loader {
	if u.Boot != nil {
		return u.Boot
	}
	return bootloader.SystemdBoot{ESP: u.ESP}
}

// checkTrial refuses an upgrade while the running slot is itself on trial.
func checkTrial(bl bootloader.Loader, running bootloader.Slot) error {
	slots, err := bl.Slots()
	if err != nil {
		return fmt.Errorf("read boot entries: %w", err)
	}
	if s := slots[running]; s.Trial {
		return refuse("slot %s is itself on trial (%d tries left); wait until it is committed", running, s.Left)
	}
	return nil
}
