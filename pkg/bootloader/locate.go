package bootloader

import "github.com/keso-os/keso/pkg/cmdline"

// Location is where the running system keeps its A/B boot state, as its
// kernel command line says (docs/boot.md): on the Raspberry Pi card,
// whose boot script passes keso.mbr=<disk signature>, U-Boot's boot.env
// on partition MBRPartBoot of that MBR disk; otherwise systemd-boot's
// entries or GRUB's grub.cfg on the GPT partition LabelEFI.
type Location struct {
	MBRDisk string // keso.mbr; empty on GPT disks
}

// Locate decides the Location from a kernel command line: the one place
// that decision is made (the initrd's fall-back, the agent's boot
// assessment and keso upgrade/rollback all ask it).
func Locate(kernelCmdline string) Location {
	id, _ := cmdline.Parse(kernelCmdline).Get("keso.mbr")
	return Location{MBRDisk: id}
}

// UBoot reports whether the boot state is U-Boot's environment (the Pi
// card) rather than entries on an ESP.
func (l Location) UBoot() bool { return l.MBRDisk != "" }
