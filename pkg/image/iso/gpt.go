package iso

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"unicode/utf16"
)

func seedBytes(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// guid returns a stable version-4-layout GUID in GPT's mixed-endian encoding.
func guid(seed string) []byte {
	s := seedBytes(seed)
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return mixed(s[:16])
}

// mixed converts a big-endian (RFC 4122) GUID to GPT byte order.
func mixed(u []byte) []byte {
	g := make([]byte, 16)
	g[0], g[1], g[2], g[3] = u[3], u[2], u[1], u[0]
	g[4], g[5] = u[5], u[4]
	g[6], g[7] = u[7], u[6]
	copy(g[8:], u[8:16])
	return g
}

// espType is C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
var espType = mixed([]byte{0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b})

const gptEntries = 128

// writeGPT writes a primary GPT (header at LBA 1, entries at LBA 2-33, inside
// the ISO system area) and the backup at the end, listing only the ESP:
// overlapping entries make OVMF discard the table (NOTES.md).
func writeGPT(f *os.File, total, espStart, espLen uint64, seed string) error {
	entries := make([]byte, gptEntries*128)
	copy(entries[0:16], espType)
	copy(entries[16:32], guid(seed+"/iso-esp"))
	binary.LittleEndian.PutUint64(entries[32:], espStart)
	binary.LittleEndian.PutUint64(entries[40:], espStart+espLen-1)
	for i, r := range utf16.Encode([]rune("EFI boot partition")) {
		binary.LittleEndian.PutUint16(entries[56+2*i:], r)
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	entrySectors := uint64(len(entries) / sector)
	backupEntries := total - 1 - entrySectors
	header := func(my, alt, entriesLBA uint64) []byte {
		h := make([]byte, sector)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], 64)              // first usable: after the 32 KiB system area
		binary.LittleEndian.PutUint64(h[48:], backupEntries-1) // last usable
		copy(h[56:72], guid(seed+"/iso-disk"))
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], 128)
		binary.LittleEndian.PutUint32(h[88:], entriesCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	for _, w := range []struct {
		off int64
		b   []byte
	}{
		{1 * sector, header(1, total-1, 2)},
		{2 * sector, entries},
		{int64(backupEntries) * sector, entries},
		{int64(total-1) * sector, header(total-1, 1, backupEntries)},
	} {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			return fmt.Errorf("write GPT at %d: %w", w.off, err)
		}
	}
	return nil
}
