package blockdev

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// HeadSize is how many bytes of a device Detect looks at: enough for the
// btrfs superblock at 64 KiB and a swap signature with 64 KiB pages.
const HeadSize = 72 << 10

// Probe is what Detect found at the start of a device.
type Probe struct {
	// Type is "" for an empty (all-zero) device, a file-system type as
	// blkid names it (ext4, ext3, ext2, xfs, btrfs, vfat, iso9660,
	// squashfs, swap, crypto_LUKS, LVM2_member), "gpt" or "mbr" for a
	// partition table, or "unknown" for other data.
	Type  string
	Label string
}

// Empty reports whether the device holds nothing: safe to format.
func (p Probe) Empty() bool { return p.Type == "" }

// IsExt reports whether the device holds ext2, ext3 or ext4, which the
// ext4 driver mounts and grows.
func (p Probe) IsExt() bool { return p.Type == "ext2" || p.Type == "ext3" || p.Type == "ext4" }

// Mountable reports whether Type is a file system rather than a partition
// table, swap, an encrypted or LVM volume or unknown data.
func (p Probe) Mountable() bool {
	switch p.Type {
	case "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "iso9660", "squashfs":
		return true
	}
	return false
}

func at(b []byte, off int, magic string) bool {
	return off >= 0 && off+len(magic) <= len(b) && string(b[off:off+len(magic)]) == magic
}

func cstr(b []byte, off, n int) string {
	if off+n > len(b) {
		return ""
	}
	s := b[off : off+n]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(string(s), " ")
}

// Detect identifies what the first bytes of a device hold. head should be
// HeadSize bytes (shorter heads find less).
func Detect(head []byte) Probe {
	le16 := func(off int) uint16 {
		if off+2 > len(head) {
			return 0
		}
		return binary.LittleEndian.Uint16(head[off:])
	}
	le32 := func(off int) uint32 {
		if off+4 > len(head) {
			return 0
		}
		return binary.LittleEndian.Uint32(head[off:])
	}
	switch {
	case at(head, 0, "LUKS\xba\xbe"):
		return Probe{Type: "crypto_LUKS"}
	case at(head, 0, "XFSB"):
		return Probe{Type: "xfs", Label: cstr(head, 108, 12)}
	case at(head, 0, "hsqs"):
		return Probe{Type: "squashfs"}
	case le16(1080) == 0xEF53:
		// ext superblock at 1024: s_feature_compat at +92,
		// s_feature_incompat at +96, s_volume_name at +120.
		compat, incompat := le32(1024+92), le32(1024+96)
		t := "ext2"
		switch {
		case incompat&^0x6 != 0: // anything past FILETYPE and RECOVER (extents, 64bit, flex_bg…)
			t = "ext4"
		case compat&0x4 != 0: // has_journal
			t = "ext3"
		}
		return Probe{Type: t, Label: cstr(head, 1024+120, 16)}
	case at(head, 65536+64, "_BHRfS_M"):
		return Probe{Type: "btrfs", Label: cstr(head, 65536+0x12b, 256)}
	case at(head, 32769, "CD001"):
		l, _ := ProbeLabel(bytes.NewReader(head))
		return Probe{Type: "iso9660", Label: l.Label}
	case le16(510) == 0xAA55 && (at(head, 54, "FAT1") || at(head, 54, "FAT ") || at(head, 82, "FAT32")):
		// ProbeLabel reads the label as blkid does (the root directory's
		// entry when it lies within head, else the boot sector's).
		l, _ := ProbeLabel(bytes.NewReader(head))
		return Probe{Type: "vfat", Label: l.Label}
	}
	for _, page := range []int{4096, 8192, 16384, 65536} {
		if at(head, page-10, "SWAPSPACE2") || at(head, page-10, "SWAP-SPACE") {
			return Probe{Type: "swap", Label: cstr(head, 1024+28, 16)}
		}
	}
	for _, sector := range []int{0, 512, 1024, 1536} {
		if at(head, sector, "LABELONE") {
			return Probe{Type: "LVM2_member"}
		}
	}
	if at(head, 512, "EFI PART") || at(head, 4096, "EFI PART") {
		return Probe{Type: "gpt"}
	}
	if le16(510) == 0xAA55 {
		for i := 0; i < 4; i++ {
			if head[446+16*i+4] != 0 {
				return Probe{Type: "mbr"}
			}
		}
	}
	for _, c := range head {
		if c != 0 {
			return Probe{Type: "unknown"}
		}
	}
	return Probe{}
}
