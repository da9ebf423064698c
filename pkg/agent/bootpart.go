package agent

import (
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/upgrade"
)

// bootPartition finds the partition that holds the A/B boot state
// (bootloader.Locate says which).
func (a *Agent) bootPartition() (dev string, loc bootloader.Location, err error) {
	loc = bootloader.Locate(a.Cmdline)
	if loc.UBoot() {
		dev, err = host.FindMBRPartition(a.FS.Path("/"), loc.MBRDisk, bootloader.MBRPartBoot)
		return dev, loc, err
	}
	dev, err = a.Host.FindPartition(bootloader.LabelEFI)
	return dev, loc, err
}

// assessLine is the console line of a boot's assessment, e.g. "slot a
// committed (U-Boot keso/boot.env)".
func assessLine(bs upgrade.BootStatus, bl bootloader.Loader) string {
	state := "not committed"
	switch {
	case bs.Trial:
		state = fmt.Sprintf("on trial, %d tries left", bs.TriesLeft)
	case bs.Committed:
		state = "committed"
	}
	where := "systemd-boot entries"
	if u, ok := bl.(bootloader.UBoot); ok {
		where = u.EnvFile().Name + " " + strings.TrimPrefix(u.EnvFile().Path, "/")
	}
	return fmt.Sprintf("slot %s %s (%s)", bs.Slot, state, where)
}
