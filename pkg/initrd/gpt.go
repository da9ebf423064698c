package initrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"

	"github.com/keso-os/keso/pkg/host"
)

// GPT growth: a raw image written to a disk larger than the image leaves
// the backup GPT in the middle of the disk and KESO_STATE at its image
// size. GrowGPT plans the new tables that move the backup GPT to the end
// of the disk and extend the last partition (KESO_STATE) to fill the disk.

// GPTGrow is a planned GPT rewrite: write each Write at its byte offset,
// backup first, then primary.
type GPTGrow struct {
	Partition int    // 1-based number of the grown partition
	Start     uint64 // first LBA of the partition
	OldEnd    uint64 // last LBA before
	NewEnd    uint64 // last LBA after
	Writes    []host.Patch
}

// ErrGPTNoGrow means there is nothing to grow (the tables already end at
// the end of the disk, or the partition is not the last one).
var ErrGPTNoGrow = errors.New("nothing to grow")

// PlanGPTGrow reads the protective MBR, primary GPT header and entries in
// head (at least the first 34 sectors), and plans the rewrite for a disk of
// diskSectors sectors of sectorSize bytes, extending the partition named
// label when it is the last one on the disk.
func PlanGPTGrow(head []byte, sectorSize int, diskSectors uint64, label string) (*GPTGrow, error) {
	ss := uint64(sectorSize)
	if uint64(len(head)) < 2*ss {
		return nil, fmt.Errorf("gpt: need at least 2 sectors, have %d bytes", len(head))
	}
	hdr := head[ss : ss+92]
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("gpt: no GPT header at LBA 1")
	}
	le := binary.LittleEndian
	hdrSize := le.Uint32(hdr[12:])
	if hdrSize < 92 || uint64(hdrSize) > ss {
		return nil, fmt.Errorf("gpt: header size %d", hdrSize)
	}
	hdr = append([]byte(nil), head[ss:ss+uint64(hdrSize)]...)
	if got, want := headerCRC(hdr), le.Uint32(hdr[16:]); got != want {
		return nil, fmt.Errorf("gpt: primary header CRC %08x, want %08x", got, want)
	}
	altLBA := le.Uint64(hdr[32:])
	lastUsable := le.Uint64(hdr[48:])
	entLBA := le.Uint64(hdr[72:])
	nEnt := le.Uint32(hdr[80:])
	entSize := le.Uint32(hdr[84:])
	entBytes := uint64(nEnt) * uint64(entSize)
	if entSize < 128 || entBytes > 1<<20 {
		return nil, fmt.Errorf("gpt: %d entries of %d bytes", nEnt, entSize)
	}
	// Compared without multiplying first: a corrupt entry LBA near 2^64
	// wrapped entLBA*ss around and passed (FuzzPlanGrow, a panic in PID 1).
	if entLBA >= uint64(len(head))/ss || uint64(len(head))-entLBA*ss < entBytes {
		return nil, fmt.Errorf("gpt: entries at LBA %d (%d bytes) lie past the %d bytes read", entLBA, entBytes, len(head))
	}
	ents := append([]byte(nil), head[entLBA*ss:entLBA*ss+entBytes]...)
	if got, want := crc32.ChecksumIEEE(ents), le.Uint32(hdr[88:]); got != want {
		return nil, fmt.Errorf("gpt: entries CRC %08x, want %08x", got, want)
	}
	entSectors := (entBytes + ss - 1) / ss
	newAlt := diskSectors - 1
	if newAlt <= altLBA {
		return nil, ErrGPTNoGrow
	}
	newBackupEnt := newAlt - entSectors
	newLastUsable := newBackupEnt - 1

	// Find the partition by name and check that it is the last one.
	idx, maxEnd := -1, uint64(0)
	for i := uint32(0); i < nEnt; i++ {
		e := ents[uint64(i)*uint64(entSize):][:entSize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		end := le.Uint64(e[40:])
		if end > maxEnd {
			maxEnd = end
		}
		if partName(e[56:128]) == label {
			idx = int(i)
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("gpt: no partition named %s", label)
	}
	e := ents[idx*int(entSize):][:entSize]
	start, end := le.Uint64(e[32:]), le.Uint64(e[40:])
	if end != maxEnd || end > lastUsable {
		return nil, fmt.Errorf("gpt: %s (LBA %d-%d) is not the last partition: %w", label, start, end, ErrGPTNoGrow)
	}
	if start < 2 || start < entLBA+entSectors {
		// The header (LBA 1) and the entries are rewritten: a partition
		// over them (a corrupt entry starting at LBA 0) must not be grown.
		return nil, fmt.Errorf("gpt: %s (LBA %d-%d) starts over the partition table (header at LBA 1, entries at LBA %d-%d): not growing a corrupt table", label, start, end, entLBA, entLBA+entSectors-1)
	}
	if start > end || end >= newLastUsable {
		// A consistent table never gets here (its partitions end before
		// the old backup GPT, which lies before newAlt); a corrupt entry
		// (past the disk, or ending before it starts) must not be
		// "grown" into one that ends before it did.
		return nil, fmt.Errorf("gpt: %s (LBA %d-%d) does not end before LBA %d, the last usable one on a disk of %d sectors: want a partition that ends before it", label, start, end, newLastUsable, diskSectors)
	}
	le.PutUint64(e[40:], newLastUsable)
	entCRC := crc32.ChecksumIEEE(ents)

	prim := append([]byte(nil), hdr...)
	le.PutUint64(prim[32:], newAlt)
	le.PutUint64(prim[48:], newLastUsable)
	le.PutUint32(prim[88:], entCRC)
	setHeaderCRC(prim)

	back := append([]byte(nil), prim...)
	le.PutUint64(back[24:], newAlt)
	le.PutUint64(back[32:], 1)
	le.PutUint64(back[72:], newBackupEnt)
	setHeaderCRC(back)

	g := &GPTGrow{Partition: idx + 1, Start: start, OldEnd: end, NewEnd: newLastUsable}
	g.Writes = append(g.Writes,
		host.Patch{Offset: int64(newBackupEnt * ss), Data: ents},
		host.Patch{Offset: int64(newAlt * ss), Data: back},
		host.Patch{Offset: int64(entLBA * ss), Data: ents},
		host.Patch{Offset: int64(ss), Data: prim},
	)
	// Protective MBR: the 0xEE entry covers the disk (capped at 32 bits).
	if len(head) >= 512 && head[510] == 0x55 && head[511] == 0xAA {
		for i := 0; i < 4; i++ {
			pe := head[446+16*i:][:16]
			if pe[4] == 0xEE {
				size := diskSectors - 1
				if size > 0xFFFFFFFF {
					size = 0xFFFFFFFF
				}
				b := make([]byte, 4)
				le.PutUint32(b, uint32(size))
				g.Writes = append(g.Writes, host.Patch{Offset: int64(446 + 16*i + 12), Data: b})
			}
		}
	}
	return g, nil
}

func headerCRC(h []byte) uint32 {
	c := append([]byte(nil), h...)
	binary.LittleEndian.PutUint32(c[16:], 0)
	return crc32.ChecksumIEEE(c)
}

func setHeaderCRC(h []byte) {
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
}

func partName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
