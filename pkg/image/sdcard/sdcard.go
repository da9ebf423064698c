// Package sdcard plans and writes keso's Raspberry Pi SD card image. The
// Pi 2/3 boot ROM reads only MBR partition tables, so the card is MBR:
//
//  1. KESO_BOOT  FAT16 (type 0x0e, active): the Pi firmware (bootcode.bin,
//     start*.elf, fixup*.dat), config.txt, U-Boot, boot.scr (A/B with a try
//     counter in keso/boot.env, pkg/bootloader), the boards' DTBs,
//     keso/a/{vmlinuz,initrd} and keso/b/{vmlinuz,initrd}
//  2. root slot A  the squashfs written raw (type 0x83)
//  3. root slot B  same size, empty (type 0x83)
//  4. state        ext4 labelled KESO_STATE (type 0x83), grown to the end
//     of the card on first boot
//
// MBR partitions have no names, so the boot script tells the initrd which
// disk holds the slots: keso.mbr=<disk signature> on the kernel command
// line; slot a is partition 2, b is 3, state is 4 (docs/boot.md). The image
// size is a power of two (QEMU's raspi machines need that for an SD card);
// the space after the state partition is unpartitioned until first boot.
package sdcard

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/raw"
	"github.com/keso-os/keso/pkg/image/tree"
)

const (
	mib    = 1 << 20
	sector = 512
)

// BootLabel is the FAT volume label of the boot partition; the boot-partition
// datasource finds user config by it (pkg/datasource).
const BootLabel = bootloader.LabelBoot

// Partition numbers on the card, part of the boot contract (docs/boot.md).
const (
	PartBoot  = bootloader.MBRPartBoot
	PartRootA = bootloader.MBRPartRootA
	PartRootB = bootloader.MBRPartRootB
	PartState = bootloader.MBRPartState
)

// Layout is the partition plan (sizes in MiB).
type Layout struct {
	BootMiB, RootMiB, StateMiB int
}

// Part is one planned MBR partition (512-byte sectors).
type Part struct {
	Index    int
	Name     string // what it is, for messages: KESO_BOOT, root A, …
	Type     mbr.Type
	Bootable bool
	Start    uint32
	Size     uint32
}

// Bytes is the partition size.
func (p Part) Bytes() int64 { return int64(p.Size) * sector }

// Offset is the partition's first byte on the card.
func (p Part) Offset() int64 { return int64(p.Start) * sector }

// Plan lays the partitions out 1 MiB aligned and returns them with the
// image size: the next power of two that holds them.
func Plan(l Layout) ([]Part, int64) {
	var parts []Part
	next := uint32(mib / sector)
	add := func(name string, t mbr.Type, boot bool, sizeMiB int) {
		n := uint32(sizeMiB) * (mib / sector)
		parts = append(parts, Part{Index: len(parts) + 1, Name: name, Type: t, Bootable: boot, Start: next, Size: n})
		next += n
	}
	add(BootLabel, mbr.Fat16bLBA, true, l.BootMiB)
	add("root A", mbr.Linux, false, l.RootMiB)
	add("root B", mbr.Linux, false, l.RootMiB)
	add(raw.LabelState, mbr.Linux, false, l.StateMiB)
	used := int64(next) * sector
	size := int64(mib)
	for size < used {
		size *= 2
	}
	return parts, size
}

// DiskID is the MBR disk signature derived from a seed (reproducible, and
// different per image version so two cards of different builds differ).
func DiskID(seed string) uint32 {
	s := sha256.Sum256([]byte("keso-mbr/" + seed))
	id := binary.LittleEndian.Uint32(s[:4])
	if id == 0 {
		id = 1 // 0 means "no signature" to some tools
	}
	return id
}

// Options for Write.
type Options struct {
	Seed     string // disk signature and ext4 UUID seed (arch + version + root sha256)
	Layout   Layout
	Boot     tree.Tree // the FAT boot partition's files (BootTree)
	Squashfs string    // host path of the root squashfs
	Epoch    int64
	TmpDir   string
}

// Write creates the SD card image at out.
func Write(ctx context.Context, out string, o Options) error {
	parts, size := Plan(o.Layout)
	fi, err := os.Stat(o.Squashfs)
	if err != nil {
		return fmt.Errorf("sd card image: %w", err)
	}
	if fi.Size() > parts[1].Bytes() {
		return fmt.Errorf("sd card image: root squashfs is %d MiB, larger than the %d MiB root slot: raise root_size_mib in the profile",
			fi.Size()/mib+1, o.Layout.RootMiB)
	}
	if err := raw.CheckTools(); err != nil {
		return err
	}
	os.Remove(out)
	b, err := file.CreateFromPath(out, size)
	if err != nil {
		return fmt.Errorf("sd card image %s: %w", out, err)
	}
	defer b.Close()
	w, err := b.Writable()
	if err != nil {
		return fmt.Errorf("sd card image %s: %w", out, err)
	}
	table := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector}
	for _, p := range parts {
		table.Partitions = append(table.Partitions, &mbr.Partition{Index: p.Index, Bootable: p.Bootable, Type: p.Type, Start: p.Start, Size: p.Size})
	}
	if err := table.Write(w, size); err != nil {
		return fmt.Errorf("sd card image %s: write MBR: %w", out, err)
	}
	var sig [4]byte
	binary.LittleEndian.PutUint32(sig[:], DiskID(o.Seed))
	if _, err := w.WriteAt(sig[:], 440); err != nil {
		return fmt.Errorf("sd card image %s: write disk signature: %w", out, err)
	}
	if err := esp.Write(b, parts[0].Offset(), parts[0].Bytes(), BootLabel, o.Boot, o.Epoch); err != nil {
		return fmt.Errorf("sd card image %s: %w", out, err)
	}
	if err := raw.CopyFileAt(w, o.Squashfs, parts[1].Offset()); err != nil {
		return fmt.Errorf("sd card image %s: write root slot A: %w", out, err)
	}
	ext, err := raw.MakeExt4(ctx, o.TmpDir, parts[3].Bytes(), raw.LabelState, raw.GUID(o.Seed+"/rpi-ext4"), o.Epoch)
	if err != nil {
		return fmt.Errorf("sd card image %s: %w", out, err)
	}
	defer os.Remove(ext)
	if err := raw.CopyFileAt(w, ext, parts[3].Offset()); err != nil {
		return fmt.Errorf("sd card image %s: write %s: %w", out, raw.LabelState, err)
	}
	return nil
}

// BootSpec is what goes on the FAT boot partition.
type BootSpec struct {
	Arch string // arm64 or armv7
	// Firmware maps file names (bootcode.bin, start4.elf, …) to host files.
	Firmware map[string]string
	// UBoot maps a config.txt filter ("all", "pi2", "pi3", "pi4") to the
	// host path of that U-Boot build's u-boot.bin.
	UBoot map[string]string
	// DTBs maps DTB file names (bcm2837-rpi-3-b.dtb) to host files; they go
	// to the FAT root, where the firmware looks for them (upstream names,
	// upstream_kernel=1).
	DTBs           map[string]string
	Kernel, Initrd string // host files, copied to keso/a/ and keso/b/
	Cmdline        string // kernel command line without keso.slot / keso.mbr
	DiskID         uint32
	Epoch          int64
}

// UBootName is the FAT file name of the U-Boot build for a config.txt filter.
func UBootName(filter string) string {
	if filter == "all" {
		return "u-boot.bin"
	}
	return "u-boot-" + filter + ".bin"
}

// ConfigTxt renders config.txt: 64-bit mode on arm64, the UART on (it
// also fixes the core clock so the mini UART's baud rate holds), upstream
// DTB names, and U-Boot as the "kernel" (one per board family when the
// filters say so).
func ConfigTxt(arch string, uboot map[string]string) string {
	var b strings.Builder
	b.WriteString("# keso: written by keso-build (pkg/image/sdcard). The Pi firmware starts\n" +
		"# U-Boot, which runs boot.scr: A/B slots with a try counter in keso/boot.env.\n")
	if arch == "arm64" {
		b.WriteString("arm_64bit=1\n")
	}
	b.WriteString("enable_uart=1\n")
	b.WriteString("# load the mainline (Debian) device tree names: bcm2837-rpi-3-b.dtb, bcm2711-rpi-4-b.dtb\n")
	b.WriteString("upstream_kernel=1\n")
	b.WriteString("disable_splash=1\n")
	filters := make([]string, 0, len(uboot))
	for f := range uboot {
		filters = append(filters, f)
	}
	sort.Strings(filters)
	for _, f := range filters {
		if f == "all" {
			continue
		}
		fmt.Fprintf(&b, "[%s]\nkernel=%s\n", f, UBootName(f))
	}
	if _, ok := uboot["all"]; ok {
		fmt.Fprintf(&b, "[all]\nkernel=%s\n", UBootName("all"))
	} else if len(filters) > 0 {
		b.WriteString("[all]\n")
	}
	return b.String()
}

// KernelOptions is the command line the boot script gives the kernel,
// before the script appends keso.slot=<slot>.
func KernelOptions(cmdline string, diskID uint32) string {
	return strings.TrimSpace(fmt.Sprintf("%s keso.mbr=%08x", cmdline, diskID))
}

// BootScriptSource is boot.scr's hush source: pkg/bootloader's U-Boot A/B
// script with the Pi's kernel command line and the device tree the
// firmware handed to U-Boot (${fdtcontroladdr}).
func BootScriptSource(arch, cmdline string, diskID uint32) string {
	boot := "booti"
	if arch == "armv7" {
		boot = "bootz"
	}
	return bootloader.UBootScript(bootloader.UBootScriptSpec{Boot: boot, Options: KernelOptions(cmdline, diskID)})
}

// BootTree returns the FAT boot partition's files.
func BootTree(s BootSpec) (tree.Tree, error) {
	if len(s.Firmware) == 0 {
		return nil, fmt.Errorf("sd card boot partition: no Pi firmware files (raspi-firmware)")
	}
	for _, need := range []string{"bootcode.bin", "start.elf", "fixup.dat"} {
		if _, ok := s.Firmware[need]; !ok {
			return nil, fmt.Errorf("sd card boot partition: firmware file %s missing (raspi-firmware's usr/lib/raspi-firmware/)", need)
		}
	}
	if len(s.UBoot) == 0 {
		return nil, fmt.Errorf("sd card boot partition: no U-Boot build (rpi.uboot_builds in the profile)")
	}
	t := tree.Tree{}
	for n, p := range s.Firmware {
		t.Copy(n, 0o644, p)
	}
	for f, p := range s.UBoot {
		t.Copy(UBootName(f), 0o644, p)
	}
	for n, p := range s.DTBs {
		t.Copy(n, 0o644, p)
	}
	t.Data("config.txt", 0o644, []byte(ConfigTxt(s.Arch, s.UBoot)))
	src := BootScriptSource(s.Arch, s.Cmdline, s.DiskID)
	t.Data("boot.cmd", 0o644, []byte(src))
	t.Data("boot.scr", 0o644, bootloader.UImageScript(src, s.Epoch))
	t.Data(strings.TrimPrefix(bootloader.UBootEnvPath, "/"), 0o644, bootloader.UBootEnv{Good: bootloader.SlotA}.Render())
	for _, slot := range []string{"a", "b"} {
		t.Copy("keso/"+slot+"/vmlinuz", 0o644, s.Kernel)
		t.Copy("keso/"+slot+"/initrd", 0o644, s.Initrd)
	}
	return t, nil
}
