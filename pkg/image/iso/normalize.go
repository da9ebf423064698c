package iso

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
)

// Normalize makes go-diskfs's ISO reproducible: it sets the volume
// descriptor dates, every directory record's recording date and every Rock
// Ridge TF time stamp to t (go-diskfs uses the clock and the staging
// files' ctimes), and every Rock Ridge owner (PX) to root.
func Normalize(f *os.File, t time.Time) error {
	t = t.UTC()
	long := []byte(fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	long = append(long, 0)
	short := []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
	pvd, err := readAt(f, 16*block, block)
	if err != nil {
		return err
	}
	for _, off := range []int{813, 830, 864} { // creation, modification, effective
		copy(pvd[off:off+17], long)
	}
	copy(pvd[847:847+17], []byte("0000000000000000\x00")) // expiration: none
	if _, err := f.WriteAt(pvd, 16*block); err != nil {
		return fmt.Errorf("write PVD: %w", err)
	}
	root := pvd[156 : 156+34]
	seen := map[uint32]bool{}
	return walkDir(f, binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:]), short, seen)
}

func walkDir(f *os.File, lba, size uint32, short []byte, seen map[uint32]bool) error {
	if seen[lba] {
		return nil
	}
	seen[lba] = true
	b, err := readAt(f, int64(lba)*block, int(size))
	if err != nil {
		return err
	}
	var subdirs [][2]uint32
	for off := 0; off < len(b); {
		n := int(b[off])
		if n == 0 {
			off = (off/block + 1) * block
			continue
		}
		if off+n > len(b) || n < 34 {
			return fmt.Errorf("directory at block %d: bad record length %d at %d", lba, n, off)
		}
		r := b[off : off+n]
		copy(r[18:25], short)
		nameLen := int(r[32])
		su := 33 + nameLen
		if nameLen%2 == 0 {
			su++
		}
		fixSystemUse(r[su:], short)
		if r[25]&2 != 0 && !(nameLen == 1 && (r[33] == 0 || r[33] == 1)) {
			subdirs = append(subdirs, [2]uint32{binary.LittleEndian.Uint32(r[2:]), binary.LittleEndian.Uint32(r[10:])})
		}
		off += n
	}
	if _, err := f.WriteAt(b, int64(lba)*block); err != nil {
		return fmt.Errorf("write directory at block %d: %w", lba, err)
	}
	for _, d := range subdirs {
		if err := walkDir(f, d[0], d[1], short, seen); err != nil {
			return err
		}
	}
	return nil
}

// fixSystemUse rewrites Rock Ridge TF times and PX owners in place.
func fixSystemUse(su []byte, short []byte) {
	for len(su) >= 4 {
		sig, n := string(su[0:2]), int(su[2])
		if n < 4 || n > len(su) {
			return
		}
		e := su[:n]
		switch sig {
		case "TF":
			flags := e[4]
			size := 7
			if flags&0x80 != 0 {
				size = 17
			}
			for p := 5; p+size <= n; p += size {
				if size == 7 {
					copy(e[p:p+7], short)
				} else {
					for i := range e[p : p+17] {
						e[p+i] = '0'
					}
					e[p+16] = 0
				}
			}
		case "PX":
			if n >= 36 {
				for i := 20; i < 36; i++ { // uid and gid, both-endian
					e[i] = 0
				}
			}
		}
		su = su[n:]
	}
}
