package agent

import (
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/upgrade"
)

// bootPartition finds the partition that holds the A/B boot state: on the
// Raspberry Pi card (keso.mbr=<disk signature> on the command line) MBR
// partition 1 of that disk, with U-Boot's boot.env; otherwise the GPT
// partition KESO_EFI, with systemd-boot's entries.
func (a *Agent) bootPartition() (dev string, uboot bool, err error) {
	if id, ok := cmdline.Parse(a.Cmdline).Get("keso.mbr"); ok && id != "" {
		dev, err := host.FindMBRPartition(a.FS.Path("/"), id, bootloader.MBRPartBoot)
		return dev, true, err
	}
	dev, err = a.Host.FindPartition(bootloader.LabelEFI)
	return dev, false, err
}

// bootLoader is the boot loader whose state is on the mounted partition.
func bootLoader(part host.FS, uboot bool) upgrade.BootLoader {
	if uboot {
		return upgrade.UBoot{FS: part}
	}
	return upgrade.ESPLoader(part)
}

// assessLine is the console line of a boot's assessment, e.g. "slot a
// committed (U-Boot keso/boot.env)".
func assessLine(bs upgrade.BootStatus, bl upgrade.BootLoader) string {
	state := "not committed"
	switch {
	case bs.Trial:
		state = fmt.Sprintf("on trial, %d tries left", bs.TriesLeft)
	case bs.Committed:
		state = "committed"
	}
	where := "systemd-boot entries"
	if u, ok := bl.(upgrade.UBoot); ok {
		where = u.EnvFile().Name + " " + strings.TrimPrefix(u.EnvFile().Path, "/")
	}
	return fmt.Sprintf("slot %s %s (%s)", bs.Slot, state, where)
}
