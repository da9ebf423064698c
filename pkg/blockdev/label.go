package blockdev

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// File system types a labelled volume can have.
const (
	FSISO9660 = "iso9660"
	FSFAT12   = "fat12"
	FSFAT16   = "fat16"
	FSFAT32   = "fat32"
)

// Label is what ProbeLabel found at the start of a device.
type Label struct {
	FSType string // FSISO9660, FSFAT12, …
	Label  string // volume label, trailing spaces removed
	// Size is the file system's size in bytes as its own header says (FAT);
	// 0 when unknown (ISO 9660 is read up to the end of the device).
	Size int64
}

// ISO 9660: the primary volume descriptor is the 2048-byte sector 16; it
// starts with type 1 and "CD001"; the volume identifier is 32 bytes at +40.
const (
	isoPVD      = 16 * 2048
	isoLabelOff = 40
	isoLabelLen = 32
)

// ProbeLabel reads the volume label of an ISO 9660 or FAT file system at the
// start of r. ok is false when r holds neither. It reads the label the way
// blkid does: for FAT the root directory's volume-label entry wins over the
// boot sector's copy (Windows and `fatlabel` may update only the former).
func ProbeLabel(r io.ReaderAt) (l Label, ok bool) {
	pvd := make([]byte, isoLabelOff+isoLabelLen)
	if _, err := r.ReadAt(pvd, isoPVD); err == nil && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return Label{FSType: FSISO9660, Label: strings.TrimRight(string(pvd[isoLabelOff:]), " \x00")}, true
	}
	return probeFAT(r)
}

// fatGeometry is the part of a FAT boot sector needed to find the label and
// the file system's type and size.
type fatGeometry struct {
	bytesPerSector    uint32
	sectorsPerCluster uint32
	reserved          uint32
	fats              uint32
	rootEntries       uint32
	totalSectors      uint32
	fatSectors        uint32
	rootCluster       uint32 // FAT32
}

func probeFAT(r io.ReaderAt) (Label, bool) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return Label{}, false
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return Label{}, false
	}
	le16 := func(off int) uint32 { return uint32(binary.LittleEndian.Uint16(bs[off:])) }
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(bs[off:]) }
	g := fatGeometry{
		bytesPerSector:    le16(11),
		sectorsPerCluster: uint32(bs[13]),
		reserved:          le16(14),
		fats:              uint32(bs[16]),
		rootEntries:       le16(17),
		totalSectors:      le16(19),
		fatSectors:        le16(22),
	}
	if g.totalSectors == 0 {
		g.totalSectors = le32(32)
	}
	if g.fatSectors == 0 {
		g.fatSectors = le32(36)
		g.rootCluster = le32(44)
	}
	switch g.bytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return Label{}, false // an MBR or anything else that is not a FAT boot sector
	}
	if g.sectorsPerCluster == 0 || g.sectorsPerCluster&(g.sectorsPerCluster-1) != 0 ||
		g.reserved == 0 || g.fats == 0 || g.fatSectors == 0 || g.totalSectors == 0 {
		return Label{}, false
	}
	// Cluster count decides the FAT type (Microsoft's FAT specification).
	rootSectors := (g.rootEntries*32 + g.bytesPerSector - 1) / g.bytesPerSector
	meta := g.reserved + g.fats*g.fatSectors + rootSectors
	if meta >= g.totalSectors {
		return Label{}, false
	}
	clusters := (g.totalSectors - meta) / g.sectorsPerCluster
	l := Label{Size: int64(g.totalSectors) * int64(g.bytesPerSector)}
	labelOff, sigOff := 43, 38
	switch {
	case clusters < 4085:
		l.FSType = FSFAT12
	case clusters < 65525:
		l.FSType = FSFAT16
	default:
		l.FSType, labelOff, sigOff = FSFAT32, 71, 66
	}
	if bs[sigOff] == 0x29 {
		l.Label = trimLabel(bs[labelOff : labelOff+11])
	}
	if v, ok := fatRootLabel(r, g, l.FSType); ok {
		l.Label = v
	}
	if l.Label == "NO NAME" {
		l.Label = ""
	}
	return l, true
}

// fatRootLabel looks for the volume-label entry in the root directory (for
// FAT32, in its first cluster).
func fatRootLabel(r io.ReaderAt, g fatGeometry, fstype string) (string, bool) {
	var off, size int64
	bps := int64(g.bytesPerSector)
	if fstype == FSFAT32 {
		if g.rootCluster < 2 {
			return "", false
		}
		dataStart := int64(g.reserved+g.fats*g.fatSectors) * bps
		off = dataStart + int64(g.rootCluster-2)*int64(g.sectorsPerCluster)*bps
		size = int64(g.sectorsPerCluster) * bps
	} else {
		off = int64(g.reserved+g.fats*g.fatSectors) * bps
		size = int64(g.rootEntries) * 32
	}
	if size <= 0 || size > 1<<20 {
		return "", false
	}
	dir := make([]byte, size)
	if n, err := r.ReadAt(dir, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return "", false
	} else {
		dir = dir[:n]
	}
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break // end of directory
		}
		attr := e[11]
		if e[0] == 0xE5 || attr == 0x0F {
			continue // deleted, or a long-name part
		}
		if attr&0x08 != 0 && attr&0x10 == 0 {
			return trimLabel(e[:11]), true
		}
	}
	return "", false
}

func trimLabel(b []byte) string { return strings.TrimRight(string(b), " \x00") }
