package initrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"unicode/utf16"
)

// gptPart is one partition of a seed GPT.
type gptPart struct {
	name       string
	start, end uint64
}

// gptSeed builds the start of a GPT disk of sectors 512-byte sectors: the
// protective MBR, the primary header and its entries, as sgdisk writes
// them but with 4 entries (one sector) instead of 128 (32 sectors), so
// that the fuzzer mutates (and minimizes) 1.5 KiB inputs, not 17 KiB.
func gptSeed(sectors uint64, parts ...gptPart) []byte {
	const entries = 4
	le := binary.LittleEndian
	head := make([]byte, 3*512)
	pe := head[446:]
	pe[4] = 0xEE
	le.PutUint32(pe[8:], 1)
	le.PutUint32(pe[12:], uint32(min(sectors-1, 0xFFFFFFFF)))
	head[510], head[511] = 0x55, 0xAA
	ents := head[2*512:]
	for i, p := range parts {
		e := ents[128*i:]
		copy(e[0:16], "\xaf\x3d\xc6\x0f\x83\x84\x72\x47\x8e\x79\x3d\x69\xd8\x47\x7d\xe4") // Linux file system
		e[16], e[17] = byte(i+1), 0x5e                                                    // unique GUID
		le.PutUint64(e[32:], p.start)
		le.PutUint64(e[40:], p.end)
		for j, c := range utf16.Encode([]rune(p.name)) {
			le.PutUint16(e[56+2*j:], c)
		}
	}
	h := head[512:]
	copy(h, "EFI PART")
	le.PutUint32(h[8:], 0x00010000)
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)
	le.PutUint64(h[32:], sectors-1)
	le.PutUint64(h[40:], 3)
	le.PutUint64(h[48:], sectors-3)
	copy(h[56:72], "keso-disk-guid!!")
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], entries)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[88:], crc32.ChecksumIEEE(ents[:entries*128]))
	setHeaderCRC(h[:92])
	return head
}

// fixGPTCRCs makes the primary header's checksums match, so that the
// fuzzer reaches the code behind them.
func fixGPTCRCs(head []byte) {
	const ss = 512
	le := binary.LittleEndian
	if len(head) < 2*ss || string(head[ss:ss+8]) != "EFI PART" {
		return
	}
	hdrSize := uint64(le.Uint32(head[ss+12:]))
	if hdrSize < 92 || hdrSize > ss {
		return
	}
	hdr := head[ss : ss+hdrSize]
	entLBA, n := le.Uint64(hdr[72:]), uint64(le.Uint32(hdr[80:]))*uint64(le.Uint32(hdr[84:]))
	if entLBA < uint64(len(head))/ss && n <= uint64(len(head))-entLBA*ss {
		le.PutUint32(hdr[88:], crc32.ChecksumIEEE(head[entLBA*ss:entLBA*ss+n]))
	}
	setHeaderCRC(hdr)
}

// planString describes a plan without the bytes it writes.
func planString(g *GPTGrow) string {
	if g == nil {
		return "no plan"
	}
	s := fmt.Sprintf("partition %d LBA %d-%d to %d, writes", g.Partition, g.Start, g.OldEnd, g.NewEnd)
	for _, w := range g.Writes {
		s += fmt.Sprintf(" %d+%d", w.Offset, len(w.Data))
	}
	return s
}

// FuzzPlanGrow: the partition table at the start of the boot disk (a GPT
// found by the state partition's name, or the Raspberry Pi card's MBR by
// partition number) gives no plan, or a plan that grows the partition
// within the disk, writes only inside the disk and never into the
// partition's data, and that leaves nothing to grow when written.
func FuzzPlanGrow(f *testing.F) {
	const image = 16 << 20 / 512 // a 16 MiB image ...
	const disk = 40 << 20 / 512  // ... dd'd onto a 40 MiB disk
	layout := []gptPart{{"ESP", 2048, 4095}, {"KESO_ROOT_A", 4096, 12287}, {"KESO_ROOT_B", 12288, 20479}, {StatePartLabel, 20480, image - 3}}
	if g, err := PlanGPTGrow(gptSeed(image, layout...), 512, disk, StatePartLabel); err != nil || g.Partition != 4 || g.NewEnd != disk-3 {
		f.Fatalf("seed GPT: PlanGPTGrow = %+v, %v; want partition 4 grown to LBA %d", g, err, disk-3)
	}
	f.Add(gptSeed(image, layout...), uint64(disk), uint8(4), false)
	f.Add(gptSeed(disk, layout...), uint64(disk), uint8(4), false) // grown already
	f.Add(gptSeed(image, layout[:3]...), uint64(disk), uint8(4), true)
	f.Add(gptSeed(image, layout[0], layout[3], layout[1]), uint64(image), uint8(4), true)
	f.Add(mbrSector(0xd4d16b13, cardParts...), uint64(8388608), uint8(MBRPartState), false)
	f.Add(mbrSector(0xd4d16b13, cardParts...), uint64(4851712), uint8(MBRPartState), false)
	f.Add(mbrSector(0xd4d16b13, cardParts...), uint64(8388608), uint8(2), false)
	f.Add(make([]byte, 512), uint64(disk), uint8(4), false)
	f.Fuzz(func(t *testing.T, head []byte, diskSectors uint64, partno uint8, fixCRC bool) {
		const ss = 512
		diskSectors %= 1 << 40 // up to 512 TiB: byte offsets fit an int64
		// growPartition reads head from the disk, so the disk holds it.
		diskSectors = max(diskSectors, uint64(len(head)+ss-1)/ss)
		if fixCRC {
			fixGPTCRCs(head)
		}
		orig := append([]byte(nil), head...)
		g, err := planGrow(head, ss, diskSectors, StatePartLabel, int(partno%6))
		if string(head) != string(orig) {
			t.Fatalf("planGrow changed the sectors it was given")
		}
		if err != nil {
			if g != nil {
				t.Fatalf("planGrow returned %s with error %v", planString(g), err)
			}
			return
		}
		if g.Partition < 1 || !(g.Start <= g.OldEnd && g.OldEnd < g.NewEnd && g.NewEnd < diskSectors) {
			t.Fatalf("plan %s on a disk of %d sectors: want partition ≥ 1 and start ≤ old end < new end < disk", planString(g), diskSectors)
		}
		next := append([]byte(nil), head...)
		for _, w := range g.Writes {
			end := w.Offset + int64(len(w.Data))
			if w.Offset < 0 || uint64(end) > diskSectors*ss {
				t.Fatalf("plan %s writes bytes %d-%d, outside the disk of %d sectors", planString(g), w.Offset, end, diskSectors)
			}
			if uint64(end) > g.Start*ss && uint64(w.Offset) <= g.OldEnd*ss+ss-1 {
				t.Fatalf("plan %s writes bytes %d-%d, inside the partition", planString(g), w.Offset, end)
			}
			if end <= int64(len(next)) {
				copy(next[w.Offset:], w.Data)
			}
		}
		if again, err := planGrow(next, ss, diskSectors, StatePartLabel, int(partno%6)); !errors.Is(err, ErrGPTNoGrow) {
			t.Fatalf("plan %s, once written, plans %s, %v; want nothing to grow", planString(g), planString(again), err)
		}
	})
}
