package host

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// MBR disks have no partition names: keso's Raspberry Pi SD card
// (pkg/image/sdcard) is found by its MBR disk signature, which the boot
// script passes as keso.mbr=<8 hex digits>, and its partitions by number
// (1 boot FAT, 2 slot a, 3 slot b, 4 state; docs/boot.md).

// MBRDiskID returns the disk signature of the MBR in sector0 as 8
// lower-case hex digits; ok is false when sector0 holds no MBR or a GPT's
// protective MBR.
func MBRDiskID(sector0 []byte) (id string, ok bool) {
	if len(sector0) < 512 || sector0[510] != 0x55 || sector0[511] != 0xaa {
		return "", false
	}
	for i := 0; i < 4; i++ {
		if sector0[446+16*i+4] == 0xee {
			return "", false
		}
	}
	return fmt.Sprintf("%08x", binary.LittleEndian.Uint32(sector0[440:444])), true
}

// FindMBRPartition returns the device node (/dev/mmcblk0p2) of partition
// partno of the disk whose MBR signature is id, reading root/sys/class/block
// and the disks' first sector at root/dev/<name> (root is "/" on a device).
func FindMBRPartition(root, id string, partno int) (string, error) {
	devs, err := ScanBlock(root)
	if err != nil {
		return "", fmt.Errorf("find partition %d of MBR disk %s: %w", partno, id, err)
	}
	for _, d := range devs {
		if !d.Disk() {
			continue
		}
		f, err := os.Open(filepath.Join(root, "dev", d.Name))
		if err != nil {
			continue
		}
		sec := make([]byte, 512)
		_, err = f.ReadAt(sec, 0)
		f.Close()
		if err != nil {
			continue
		}
		if got, ok := MBRDiskID(sec); !ok || got != id {
			continue
		}
		// Kernel naming: sda -> sda2, mmcblk0 -> mmcblk0p2, nvme0n1 -> nvme0n1p2.
		n := strconv.Itoa(partno)
		for _, p := range devs {
			if p.Partition && p.PartN == partno && (p.Name == d.Name+n || p.Name == d.Name+"p"+n) {
				return "/dev/" + p.Name, nil
			}
		}
		return "", fmt.Errorf("find partition %d of MBR disk %s: /dev/%s has the signature but no partition %d", partno, id, d.Name, partno)
	}
	return "", fmt.Errorf("find partition %d of MBR disk %s: no disk has that MBR signature", partno, id)
}
