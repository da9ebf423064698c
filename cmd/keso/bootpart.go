package main

import (
	"fmt"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/upgrade"
)

// The two disk layouts keso upgrades: GPT with systemd-boot, or GRUB on
// armv7 (KESO_EFI, KESO_ROOT_A/B by partition name) and the Raspberry Pi card, an MBR disk
// named on the command line by keso.mbr=<disk signature>, with U-Boot's
// boot.env on partition 1 (KESO_BOOT) and the slots a/b on partitions 2/3
// (docs/boot.md).

// locate is bootloader.Locate of the running kernel's command line.
func locate(root host.FS) bootloader.Location {
	data, _ := root.ReadFile("/proc/cmdline")
	return bootloader.Locate(string(data))
}

// mbrDisk opens root slots by partition number on the Pi card.
type mbrDisk struct {
	l  host.Linux
	id string
}

func (d mbrDisk) OpenSlot(s bootloader.Slot) (upgrade.SlotDevice, error) {
	dev, err := host.FindMBRPartition("/", d.id, s.MBRPart())
	if err != nil {
		return nil, err
	}
	return d.l.OpenBlock(dev)
}

// bootPart is the running system's boot partition, mounted, with its
// boot loader and the disk of its slots.
type bootPart struct {
	FS      host.FS
	Loader  bootloader.Loader
	Disk    upgrade.Disk
	NodeESP bootloader.ESP // where ReadNode finds the running entry's options (systemd-boot only)
	Unmount func()
}

// openBoot finds and mounts the boot partition of either layout.
func openBoot(l host.Linux, root host.FS) (bootPart, error) {
	loc := locate(root)
	if !loc.UBoot() {
		esp, unmount, err := mountESP(l)
		if err != nil {
			return bootPart{}, err
		}
		p := bootPart{FS: esp, Loader: bootloader.LoaderOn(esp, loc), Disk: hostDisk{l}, Unmount: unmount}
		if _, sd := p.Loader.(bootloader.SystemdBoot); sd {
			p.NodeESP = esp
		}
		return p, nil
	}
	dev, err := host.FindMBRPartition("/", loc.MBRDisk, bootloader.MBRPartBoot)
	if err != nil {
		return bootPart{}, fmt.Errorf("boot partition (keso.mbr=%s): %w", loc.MBRDisk, err)
	}
	p := bootPart{Disk: mbrDisk{l: l, id: loc.MBRDisk}, Unmount: func() {}}
	if mp := l.MountPointOf(dev); mp != "" {
		p.FS = host.FS{Root: mp}
	} else {
		const mp = "/run/keso/boot"
		if err := l.Mount(dev, mp, "vfat", 0, ""); err != nil {
			return bootPart{}, fmt.Errorf("mount boot partition %s on %s: %w", dev, mp, err)
		}
		p.FS = host.FS{Root: mp}
		p.Unmount = func() { host.Sync(); l.Unmount(mp) }
	}
	p.Loader = bootloader.LoaderOn(p.FS, loc)
	return p, nil
}
