package initrd

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
)

// MBR disks: the Raspberry Pi SD card (pkg/image/sdcard) has an MBR
// partition table because the Pi 2/3 boot ROM cannot read GPT, and MBR
// partitions have no names. Its boot script passes keso.mbr=<disk
// signature> (8 hex digits, the 4 bytes at offset 440 of sector 0); on that
// disk slot a is partition 2, slot b partition 3 and the state partition 4
// (docs/boot.md). The state partition is grown to the end of the card on
// first boot, like KESO_STATE on GPT.

// MBR partition numbers of the SD card layout.
const (
	MBRPartBoot  = bootloader.MBRPartBoot
	MBRPartRootA = bootloader.MBRPartRootA
	MBRPartRootB = bootloader.MBRPartRootB
	MBRPartState = bootloader.MBRPartState
)

// MBRRootPart is the partition number of a slot on an MBR keso disk.
func MBRRootPart(slot string) int { return bootloader.Slot(slot).MBRPart() }

// ParseDiskID reads a keso.mbr value: 8 hex digits, optionally with 0x.
func ParseDiskID(s string) (string, error) {
	v := strings.ToLower(strings.TrimPrefix(strings.ToLower(s), "0x"))
	if len(v) != 8 || strings.Trim(v, "0123456789abcdef") != "" {
		return "", fmt.Errorf("keso.mbr=%q: want the MBR disk signature as 8 hex digits", s)
	}
	return v, nil
}

// findMBRPart returns the kernel name of partition partno of the disk
// whose MBR signature is id (host.FindMBRPartition, under the stage's root).
func (s *Stage) findMBRPart(id string, partno int) (string, bool) {
	dev, err := host.FindMBRPartition(s.Root, id, partno)
	if err != nil {
		return "", false
	}
	return strings.TrimPrefix(dev, "/dev/"), true
}

// statePart finds the state partition: partition 4 of the MBR disk the
// root came from, else the GPT partition labelled KESO_STATE.
func (s *Stage) statePart(devs []host.BlockDev, info *Info) (host.BlockDev, bool) {
	if info.MBRDisk != "" {
		if name, ok := s.findMBRPart(info.MBRDisk, MBRPartState); ok {
			for _, d := range devs {
				if d.Name == name {
					return d, true
				}
			}
		}
	}
	return FindPartLabel(devs, StatePartLabel)
}

// planGrow plans growing the state partition on a GPT disk (by label) or
// an MBR disk (by partition number partno).
func planGrow(head []byte, sectorSize int, diskSectors uint64, label string, partno int) (*GPTGrow, error) {
	ss := sectorSize
	if len(head) >= 2*ss && string(head[ss:ss+8]) == "EFI PART" {
		return PlanGPTGrow(head, sectorSize, diskSectors, label)
	}
	if _, ok := host.MBRDiskID(head); ok {
		if ss != 512 {
			return nil, fmt.Errorf("mbr: %d-byte sectors: only 512 is supported", ss)
		}
		return PlanMBRGrow(head[:512], diskSectors, partno)
	}
	return nil, fmt.Errorf("no GPT or MBR partition table")
}

// PlanMBRGrow plans extending MBR partition partno (1-4) to the end of a
// disk of diskSectors 512-byte sectors, when it is the last partition on
// the disk. The one write is the new sector 0. An MBR entry counts at most
// 2^32-1 sectors (2 TiB), which bounds the growth.
func PlanMBRGrow(sector0 []byte, diskSectors uint64, partno int) (*GPTGrow, error) {
	if _, ok := host.MBRDiskID(sector0); !ok {
		return nil, fmt.Errorf("mbr: no MBR partition table in sector 0")
	}
	if partno < 1 || partno > 4 {
		return nil, fmt.Errorf("mbr: partition %d is not a primary partition", partno)
	}
	le := binary.LittleEndian
	ent := func(i int) []byte { return sector0[446+16*i : 446+16*i+16] }
	e := ent(partno - 1)
	if e[4] == 0 {
		return nil, fmt.Errorf("mbr: partition %d is empty", partno)
	}
	start := uint64(le.Uint32(e[8:]))
	size := uint64(le.Uint32(e[12:]))
	if start == 0 || size == 0 {
		// Sector 0 is rewritten; an entry over it, or of no sectors, is a
		// corrupt table (FuzzPlanGrow).
		return nil, fmt.Errorf("mbr: partition %d has %d sectors from sector %d: not growing a corrupt table", partno, size, start)
	}
	oldEnd := start + size - 1
	for i := 0; i < 4; i++ {
		o := ent(i)
		if i == partno-1 || o[4] == 0 {
			continue
		}
		if end := uint64(le.Uint32(o[8:])) + uint64(le.Uint32(o[12:])) - 1; end > oldEnd {
			return nil, ErrGPTNoGrow // not the last partition
		}
	}
	if start >= diskSectors {
		// An image written to a smaller card, or a corrupt entry: the
		// size below would wrap around and "grow" it past the disk.
		return nil, fmt.Errorf("mbr: partition %d starts at sector %d, past the end of the disk (%d sectors): want one that starts on the disk", partno, start, diskSectors)
	}
	newSize := diskSectors - start
	if newSize > 0xffffffff {
		newSize = 0xffffffff
	}
	newEnd := start + newSize - 1
	if newEnd <= oldEnd {
		return nil, ErrGPTNoGrow
	}
	out := append([]byte(nil), sector0[:512]...)
	ne := out[446+16*(partno-1) : 446+16*partno]
	le.PutUint32(ne[12:], uint32(newSize))
	ne[5], ne[6], ne[7] = 0xfe, 0xff, 0xff // CHS end: beyond CHS, as tools write it
	return &GPTGrow{Partition: partno, Start: start, OldEnd: oldEnd, NewEnd: newEnd,
		Writes: []host.Patch{{Offset: 0, Data: out}}}, nil
}

// describeSlot names where a slot is looked for, for log lines.
func describeSlot(plan Plan, slot string) string {
	if slot == "" {
		slot = "a"
	}
	if plan.MBRDisk != "" {
		return fmt.Sprintf("slot %s (partition %d of MBR disk %s)", slot, MBRRootPart(slot), plan.MBRDisk)
	}
	return RootPartLabel(slot)
}
