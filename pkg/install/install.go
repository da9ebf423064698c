// Package install writes keso's installed layout onto a disk (DESIGN.md):
// GPT with KESO_EFI (FAT16: systemd-boot, loader.conf, slot A's entry,
// kernel and initrd; on armv7 GRUB, grub.cfg and grubenv instead of
// systemd-boot and its entries), KESO_ROOT_A (the running squashfs, raw,
// with its dm-verity tree after it, pkg/verity; slot A's initrd gets the
// tree's record), KESO_ROOT_B
// (empty, the same size) and KESO_STATE (a small ext4 image shipped in the
// root file system, grown to fill its partition by the initrd on first
// boot). The config is saved as /keso/config.yaml on the state partition,
// mode 0600, by SaveConfig once the caller has mounted it.
//
// Plan is pure (sizes and refusals); Write does the writing on an open
// disk (a block device on a node, a file in tests).
//
// Side effects: Write writes the target disk; the node side (node.go)
// syncs and reads sysfs to list disks.
package install

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/grubefi"
	"github.com/keso-os/keso/pkg/image/raw"
	"github.com/keso-os/keso/pkg/image/tree"
	"github.com/keso-os/keso/pkg/verity"
)

const mib = 1 << 20

// Sizes of the installed layout.
const (
	EFIMiB      = 256
	MinRootMiB  = 1024 // each slot; room for bigger future versions
	MinStateMiB = 1024
)

// Layout is the planned partitions of a target disk.
type Layout struct {
	Parts     []raw.Part
	DiskBytes int64
}

// NeededBytes is the smallest disk keso installs on, for a root squashfs of
// the given size.
func NeededBytes(squashfsBytes int64) int64 {
	return int64(1+EFIMiB+2*rootMiB(squashfsBytes)+MinStateMiB+1) * mib
}

// rootMiB sizes a slot: at least MinRootMiB, and twice the current image so
// that a later, bigger version still fits.
func rootMiB(squashfsBytes int64) int {
	need := int((2*squashfsBytes + mib - 1) / mib)
	return max(MinRootMiB, need)
}

// Plan lays the partitions out on a disk of diskBytes, KESO_STATE taking
// what is left. It refuses a disk that is too small and says how big it
// must be.
func Plan(arch string, diskBytes, squashfsBytes int64) (Layout, error) {
	need := NeededBytes(squashfsBytes)
	if diskBytes < need {
		return Layout{}, fmt.Errorf("the disk holds %d MiB; keso needs at least %d MiB (%d MiB EFI, two %d MiB root slots, %d MiB state)",
			diskBytes/mib, need/mib, EFIMiB, rootMiB(squashfsBytes), MinStateMiB)
	}
	root := rootMiB(squashfsBytes)
	state := int(diskBytes/mib) - 1 - EFIMiB - 2*root - 1 // 1 MiB head, 1 MiB tail for the backup GPT
	parts, _ := raw.Plan(arch, raw.Layout{EFIMiB: EFIMiB, RootMiB: root, StateMiB: state})
	return Layout{Parts: parts, DiskBytes: diskBytes}, nil
}

// Inputs are the files an install copies, all from the running system.
type Inputs struct {
	Arch       string
	Squashfs   string // the running root image
	Kernel     string // /boot/vmlinuz
	Initrd     string // /boot/initrd
	Loader     string // the UEFI loader: systemd-boot, or GRUB's core image when Grub
	Grub       bool   // boot through GRUB's grub.cfg (armv7), not systemd-boot entries
	StateImage string // small ext4 image for KESO_STATE
	// Options is slot A's kernel command line (keso.slot=a is added).
	Options string
	// Seed makes the partition GUIDs; give something unique per install
	// (the disk's serial, or random bytes).
	Seed  string
	Epoch int64
}

// espTree is the new disk's ESP: the loader booting slot A.
func espTree(in Inputs) (tree.Tree, error) {
	if in.Grub {
		return grubefi.Plan(in.Arch, in.Loader, grubefi.SlotA{Kernel: in.Kernel, Initrd: in.Initrd, Options: in.Options})
	}
	entry := esp.Entry{File: bootloader.FileName(bootloader.SlotA, false, 0, 0), Title: "keso (slot A)", Version: 1,
		Linux: bootloader.KernelPath(bootloader.SlotA), Initrd: bootloader.InitrdPath(bootloader.SlotA),
		Options: in.Options + " keso.slot=a"}
	return esp.Plan(in.Arch, in.Loader, []esp.Entry{entry}, map[string]string{
		bootloader.KernelPath(bootloader.SlotA)[1:]: in.Kernel,
		bootloader.InitrdPath(bootloader.SlotA)[1:]: in.Initrd,
	})
}

// Write writes the layout onto disk (opened read-write; its size is
// l.DiskBytes). It writes the partition table last but one and the state
// image last, so an interrupted install leaves a disk that does not look
// like a keso install (no KESO_* partitions) until everything else is there.
func Write(disk *os.File, l Layout, in Inputs) error {
	// Wipe the old partition table areas first: a half-written disk must
	// not be mistaken for an old install.
	if err := zero(disk, 0, mib); err != nil {
		return fmt.Errorf("install: wipe partition table: %w", err)
	}
	if err := zero(disk, l.DiskBytes-mib, mib); err != nil {
		return fmt.Errorf("install: wipe backup partition table: %w", err)
	}
	if err := writeSystem(disk, l.Parts, in); err != nil {
		return err
	}
	table := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, GUID: raw.GUID(in.Seed + "/disk")}
	for _, p := range l.Parts {
		table.Partitions = append(table.Partitions, p.GPT(in.Seed))
	}
	if err := table.Write(disk, l.DiskBytes); err != nil {
		return fmt.Errorf("install: write GPT: %w", err)
	}
	return writeState(disk, l.Parts[3], in)
}

// writeSystem writes slot A (the root image and its dm-verity tree), the
// ESP booting it and an empty slot B into parts (KESO_EFI, KESO_ROOT_A,
// KESO_ROOT_B, KESO_STATE), touching nothing outside them.
func writeSystem(disk *os.File, parts []raw.Part, in Inputs) error {
	sq, err := os.Stat(in.Squashfs)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	efi, rootA, rootB := parts[0], parts[1], parts[2]
	if need := verity.SlotBytes(sq.Size()); need > rootA.Bytes() {
		return fmt.Errorf("install: root image %d bytes (%d with its dm-verity tree) does not fit the %d byte slot", sq.Size(), need, rootA.Bytes())
	}
	// Slot A and its dm-verity tree first: slot A's initrd on the ESP
	// carries the tree's record.
	slotA := section{disk, int64(rootA.Start) * 512}
	h := sha256.New()
	src, err := os.Open(in.Squashfs)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	_, err = io.Copy(io.MultiWriter(io.NewOffsetWriter(disk, slotA.off), h), src)
	src.Close()
	if err != nil {
		return fmt.Errorf("install: write %s: %w", raw.LabelRootA, err)
	}
	rec, err := verity.Seal(slotA, sq.Size(), h.Sum(nil), "a")
	if err != nil {
		return fmt.Errorf("install: %s: %w", raw.LabelRootA, err)
	}
	initrd, err := os.ReadFile(in.Initrd)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if initrd, err = verity.AppendToInitrd(initrd, rec); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	tmp, err := os.CreateTemp("", "keso-install-initrd-*")
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(initrd)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("install: slot A's initrd: %w", err)
	}
	in.Initrd = tmp.Name()
	b := file.New(disk, false)
	tree, err := espTree(in)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := esp.Write(b, int64(efi.Start)*512, efi.Bytes(), raw.LabelEFI, tree, in.Epoch); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := zero(disk, int64(rootB.Start)*512, mib); err != nil {
		return fmt.Errorf("install: clear %s: %w", raw.LabelRootB, err)
	}
	return nil
}

// writeState writes the state image into its partition and syncs the disk.
func writeState(disk *os.File, state raw.Part, in Inputs) error {
	if err := raw.CopyFileAt(disk, in.StateImage, int64(state.Start)*512); err != nil {
		return fmt.Errorf("install: write %s: %w", raw.LabelState, err)
	}
	if err := disk.Sync(); err != nil {
		return fmt.Errorf("install: sync: %w", err)
	}
	return nil
}

// WriteBeside writes keso beside a k3OS installation (PlanBeside): keso's
// partitions in the free space, then a GPT holding k3OS's partitions as
// they were and keso's after them, then the state image. k3OS's partitions
// are never written. KESO_EFI is not yet typed as an ESP, so the firmware
// still boots k3OS until SwitchFromK3OS: a disk interrupted before the
// switch boots k3OS with its data as it was.
func WriteBeside(disk *os.File, l BesideLayout, in Inputs) error {
	table, err := gpt.Read(file.New(disk, true), 512, 512)
	if err != nil {
		return fmt.Errorf("install: read the k3OS disk's GPT: %w", err)
	}
	kept, err := keptEntries(table, l.Keep)
	if err != nil {
		return err
	}
	if err := writeSystem(disk, l.New, in); err != nil {
		return err
	}
	// k3OS's partitions as they are; what an unfinished earlier install
	// beside k3OS left (PlanBeside planned over it) replaced.
	table.Partitions = kept
	for _, p := range l.New {
		gp := p.GPT(in.Seed)
		if p.Label == raw.LabelEFI {
			gp.Type = gpt.LinuxFilesystem // an ESP at SwitchFromK3OS
		}
		table.Partitions = append(table.Partitions, gp)
	}
	if err := table.Write(disk, l.DiskBytes); err != nil {
		return fmt.Errorf("install: write GPT: %w", err)
	}
	return writeState(disk, l.New[3], in)
}

// SwitchFromK3OS makes the firmware boot keso instead of k3OS on a disk
// WriteBeside wrote: one GPT write that types KESO_EFI as the ESP and
// k3OS's K3OS_GRUB as plain data (its files stay, readable). The caller
// runs it only once k3OS's data is copied and checked.
func SwitchFromK3OS(disk *os.File, l BesideLayout, k K3OSDisk) error {
	table, err := gpt.Read(file.New(disk, true), 512, 512)
	if err != nil {
		return fmt.Errorf("install: read GPT: %w", err)
	}
	done := 0
	for _, p := range table.Partitions {
		switch {
		case p.Name == raw.LabelEFI && p.Start == l.New[0].Start:
			p.Type = gpt.EFISystemPartition
			done++
		case p.Start == k.Grub.Start && p.End == k.Grub.End:
			p.Type = gpt.MicrosoftBasicData // FAT, no longer the ESP
			done++
		}
	}
	if done != 2 {
		return fmt.Errorf("install: the GPT no longer holds %s and K3OS_GRUB where keso wrote them: not switching (k3OS still boots)", raw.LabelEFI)
	}
	if err := table.Write(disk, l.DiskBytes); err != nil {
		return fmt.Errorf("install: write GPT: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return fmt.Errorf("install: sync: %w", err)
	}
	return nil
}

// keptEntries returns the disk's GPT entries of the partitions the plan
// keeps (the same sectors), and refuses when one of them is not in the
// table any more (it changed since the plan).
func keptEntries(table *gpt.Table, keep []DiskPart) ([]*gpt.Partition, error) {
	var kept []*gpt.Partition
	for _, k := range keep {
		found := false
		for _, p := range table.Partitions {
			if p.Start == k.Start && p.End == k.End {
				kept, found = append(kept, p), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("install: partition %d (LBA %d-%d) is not in the disk's GPT any more: plan again; nothing was written", k.Index, k.Start, k.End)
		}
	}
	return kept, nil
}

// ConfigPath is where the installed config lives on the state partition.
const ConfigPath = "/keso/config.yaml"

// StateFS is the mounted state partition.
type StateFS interface {
	WriteFileAtomic(p string, data []byte, mode os.FileMode) error
}

// SaveConfig stores the install's config on the state partition, 0600
// (it may hold the cluster token).
func SaveConfig(state StateFS, config []byte) error {
	if err := state.WriteFileAtomic(ConfigPath, config, 0o600); err != nil {
		return fmt.Errorf("install: save config: %w", err)
	}
	return nil
}

// section is a partition of the disk: offsets relative to its start.
type section struct {
	f   *os.File
	off int64
}

func (s section) ReadAt(b []byte, off int64) (int, error)  { return s.f.ReadAt(b, s.off+off) }
func (s section) WriteAt(b []byte, off int64) (int, error) { return s.f.WriteAt(b, s.off+off) }

func zero(w io.WriterAt, off, n int64) error {
	_, err := w.WriteAt(make([]byte, n), off)
	return err
}
