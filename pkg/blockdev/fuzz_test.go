package blockdev

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// fatSeed builds the start of a FAT file system: a boot sector (with the
// label in its extended boot record) and a root directory whose first
// entry is a volume label, as mkfs.vfat writes them, but with FATs of one
// sector: the seed is 2 KiB, which the fuzzer minimizes in well under its
// 60 s budget (it spends that on 9 KiB inputs, fuzzing nothing meanwhile).
func fatSeed(fat32 bool, totalSectors uint32, bootLabel, rootLabel string) []byte {
	const bps = 512
	const fatSectors = 1
	b := make([]byte, (1+2*fatSectors+1)*bps) // up to the root directory's first sector
	le := binary.LittleEndian
	le.PutUint16(b[11:], bps)
	b[13] = 1    // sectors per cluster
	b[14] = 1    // reserved sectors
	b[16] = 2    // FATs
	b[21] = 0xF8 // media
	labelOff, sigOff := 43, 38
	if fat32 {
		le.PutUint32(b[36:], fatSectors)
		le.PutUint32(b[44:], 2) // root cluster
		labelOff, sigOff = 71, 66
	} else {
		le.PutUint16(b[17:], 16) // root entries
		le.PutUint16(b[22:], fatSectors)
	}
	if totalSectors < 1<<16 && !fat32 {
		le.PutUint16(b[19:], uint16(totalSectors))
	} else {
		le.PutUint32(b[32:], totalSectors)
	}
	b[sigOff] = 0x29
	copy(b[labelOff:labelOff+11], []byte(bootLabel + "           ")[:11])
	b[510], b[511] = 0x55, 0xAA
	root := (1 + 2*fatSectors) * bps
	if rootLabel != "" {
		copy(b[root:root+11], []byte(rootLabel + "           ")[:11])
		b[root+11] = 0x08
	}
	return b
}

// isoPVDSeed is the start of an ISO 9660 primary volume descriptor, up to
// and with its volume identifier.
func isoPVDSeed(label string) []byte {
	b := make([]byte, isoLabelOff+isoLabelLen)
	copy(b, "\x01CD001\x01")
	copy(b[isoLabelOff:], []byte(label + strings.Repeat(" ", isoLabelLen))[:isoLabelLen])
	return b
}

// FuzzProbeLabel: the first sectors of any block device give either
// nothing or an ISO 9660 or FAT label that is trimmed, with a size that is
// not negative (and not zero for FAT, whose size the boot sector gives).
// The device is start, then (when pvd is not empty) zeros up to sector 16
// of 2048 bytes and pvd there, so that the fuzzer mutates small inputs.
func FuzzProbeLabel(f *testing.F) {
	for _, tc := range []struct {
		data []byte
		want Label
	}{
		{fatSeed(false, 2048, "CIDATA", "cidata"), Label{FSFAT12, "cidata", 2048 * 512}},
		{fatSeed(false, 40000, "NO NAME", ""), Label{FSFAT16, "", 40000 * 512}},
		{fatSeed(true, 600000, "NO NAME", "config-2"), Label{FSFAT32, "config-2", 600000 * 512}},
	} {
		if got, ok := ProbeLabel(bytes.NewReader(tc.data)); !ok || got != tc.want {
			f.Fatalf("seed: ProbeLabel = %+v, %v; want %+v", got, ok, tc.want)
		}
	}
	f.Add(fatSeed(false, 2048, "CIDATA", "cidata"), []byte(nil))
	f.Add(fatSeed(false, 40000, "NO NAME", "KESO_BOOT"), []byte(nil))
	f.Add(fatSeed(true, 600000, "cidata", ""), []byte(nil))
	f.Add(fatSeed(true, 600000, "NO NAME", "config-2"), []byte(nil))
	f.Add([]byte(nil), isoPVDSeed("cidata"))
	f.Add(make([]byte, 512), isoPVDSeed("config-2\x00\x00"))
	f.Add([]byte("tiny"), []byte(nil))
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xAA
	f.Add(mbr, []byte(nil))
	f.Fuzz(func(t *testing.T, start, pvd []byte) {
		data := start
		if len(pvd) > 0 {
			data = make([]byte, isoPVD, isoPVD+len(pvd))
			copy(data, start)
			data = append(data, pvd...)
		}
		l, ok := ProbeLabel(bytes.NewReader(data))
		if !ok {
			if l != (Label{}) {
				t.Fatalf("ProbeLabel = %+v, false", l)
			}
			return
		}
		if l.Label != strings.TrimRight(l.Label, " \x00") || l.Size < 0 {
			t.Fatalf("ProbeLabel = %+v: untrimmed label or negative size", l)
		}
		switch l.FSType {
		case FSISO9660:
		case FSFAT12, FSFAT16, FSFAT32:
			if l.Size == 0 || l.Label == "NO NAME" {
				t.Fatalf("ProbeLabel = %+v: FAT without a size, or the no-label placeholder", l)
			}
		default:
			t.Fatalf("ProbeLabel = %+v: unknown file system type", l)
		}
	})
}
