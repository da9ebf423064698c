package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keso-os/keso/pkg/cpio"
)

// A root slot on a keso disk holds the root squashfs at offset 0, zeros up
// to the next 4 KiB boundary, then a veritysetup superblock and the hash
// tree (format 1, sha256, 4 KiB blocks):
//
//	[ squashfs | zero pad | superblock | tree ]
//	0          size       SlotHashOffset(size)
//
// The salt and the superblock's UUID are derived from the image's sha256,
// so the tree, and so the root hash, is a function of the signed image:
// keso-build, `keso install` and `keso upgrade` all compute the same one,
// and the release signature over the image's digest covers it.
//
// What a slot's initrd trusts is its Record, at RecordPath inside that
// initrd: keso-build and `keso upgrade` append it to the initrd they put
// on the ESP for the slot (a second, uncompressed cpio archive after the
// first, which the kernel unpacks over it).

// RecordPath is where the record lies in a slot's initrd.
const RecordPath = "etc/keso/verity.json"

// Record is the root hash and tree parameters of one slot.
type Record struct {
	Slot       string `json:"slot"`        // "a" or "b"
	ImageSize  int64  `json:"image_size"`  // bytes of the squashfs
	RootHash   string `json:"root_hash"`   // hex
	Salt       string `json:"salt"`        // hex
	DataBlocks uint64 `json:"data_blocks"` // 4 KiB blocks covered
	HashOffset int64  `json:"hash_offset"` // byte offset of the superblock in the slot
}

// SlotHashOffset is where a slot's superblock and tree begin after an
// image of size bytes.
func SlotHashOffset(size int64) int64 {
	return (size + DefaultBlockSize - 1) / DefaultBlockSize * DefaultBlockSize
}

// SlotBytes is how many bytes of a slot an image of size bytes takes with
// its tree.
func SlotBytes(size int64) int64 {
	p := Params{DataBlocks: uint64(SlotHashOffset(size) / DefaultBlockSize), Salt: []byte{}}
	if err := p.fill(SlotHashOffset(size), false); err != nil {
		return SlotHashOffset(size)
	}
	g := p.layout(0)
	return SlotHashOffset(size) + int64(1+g.treeBlocks)*DefaultBlockSize
}

// slotParams derives the reproducible salt and UUID from the image digest.
func slotParams(imageSHA256 []byte, size int64) Params {
	salt := sha256.Sum256(append([]byte("keso verity salt v1\x00"), imageSHA256...))
	uuid := sha256.Sum256(append([]byte("keso verity uuid v1\x00"), imageSHA256...))
	p := Params{DataBlocks: uint64(SlotHashOffset(size) / DefaultBlockSize), Salt: salt[:]}
	copy(p.UUID[:], uuid[:16])
	p.UUID[6] = p.UUID[6]&0x0f | 0x40
	p.UUID[8] = p.UUID[8]&0x3f | 0x80
	return p
}

// ReadWriterAt is a slot: a partition, or an image file.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Seal writes the zero pad, the superblock and the tree after the image of
// size bytes at the start of slot, and returns the slot's record. The
// caller checks the slot holds SlotBytes(size) first.
func Seal(slot ReadWriterAt, size int64, imageSHA256 []byte, name string) (Record, error) {
	if pad := SlotHashOffset(size) - size; pad > 0 {
		if _, err := slot.WriteAt(make([]byte, pad), size); err != nil {
			return Record{}, fmt.Errorf("verity: seal slot %s: pad at %d: %w", name, size, err)
		}
	}
	off := SlotHashOffset(size)
	t, err := Build(slot, off, slot, off, slotParams(imageSHA256, size), true)
	if err != nil {
		return Record{}, fmt.Errorf("verity: seal slot %s: %w", name, err)
	}
	return Record{Slot: name, ImageSize: size, RootHash: hex.EncodeToString(t.RootHash), Salt: hex.EncodeToString(t.Salt),
		DataBlocks: t.DataBlocks, HashOffset: t.HashOffset}, nil
}

// SealFile writes a slot image file: the image at src, the pad and the
// tree, at dst; it returns the record for slot name.
func SealFile(src, dst, name string) (Record, error) {
	in, err := os.Open(src)
	if err != nil {
		return Record{}, fmt.Errorf("verity: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return Record{}, fmt.Errorf("verity: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(out, h), in)
	if err != nil {
		return Record{}, fmt.Errorf("verity: copy %s to %s: %w", src, dst, err)
	}
	rec, err := Seal(out, size, h.Sum(nil), name)
	if err != nil {
		return Record{}, err
	}
	if err := out.Close(); err != nil {
		return Record{}, fmt.Errorf("verity: write %s: %w", dst, err)
	}
	return rec, nil
}

// Tree is the record's tree, to map or check the slot with.
func (r Record) Tree() (*Tree, error) {
	root, err := hex.DecodeString(r.RootHash)
	if err != nil || len(root) != sha256.Size {
		return nil, fmt.Errorf("%w: root hash %q is not %d hex bytes", ErrParams, r.RootHash, sha256.Size)
	}
	salt, err := hex.DecodeString(r.Salt)
	if err != nil {
		return nil, fmt.Errorf("%w: salt %q is not hex", ErrParams, r.Salt)
	}
	sb := &Superblock{Version: 1, HashType: 1, Algorithm: DefaultAlgorithm, DataBlockSize: DefaultBlockSize,
		HashBlockSize: DefaultBlockSize, DataBlocks: r.DataBlocks, Salt: salt}
	return TreeFromSuperblock(sb, r.HashOffset, root)
}

// ParseRecord reads a record and checks it describes a usable tree.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("verity record: %w", err)
	}
	if r.Slot != "a" && r.Slot != "b" {
		return Record{}, fmt.Errorf("verity record: slot %q (want a or b)", r.Slot)
	}
	if r.DataBlocks == 0 || r.HashOffset != int64(r.DataBlocks)*DefaultBlockSize || SlotHashOffset(r.ImageSize) != r.HashOffset {
		return Record{}, fmt.Errorf("verity record: %d data blocks, hash offset %d and image size %d do not agree", r.DataBlocks, r.HashOffset, r.ImageSize)
	}
	if _, err := r.Tree(); err != nil {
		return Record{}, fmt.Errorf("verity record: %w", err)
	}
	return r, nil
}

// AppendToInitrd returns initrd followed by a cpio archive holding the
// record at RecordPath: zero-padded to 4 bytes first, as the kernel wants
// an uncompressed archive that follows another to start aligned.
func AppendToInitrd(initrd []byte, r Record) ([]byte, error) {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Write(initrd)
	for buf.Len()%4 != 0 {
		buf.WriteByte(0)
	}
	w := &cpio.Writer{W: &buf}
	dir := ""
	for _, part := range strings.Split(RecordPath, "/")[:strings.Count(RecordPath, "/")] {
		dir = strings.TrimPrefix(dir+"/"+part, "/")
		if err := w.Add(cpio.Entry{Name: dir, Mode: cpio.TypeDir | 0o755}); err != nil {
			return nil, err
		}
	}
	if err := w.Add(cpio.Entry{Name: RecordPath, Mode: cpio.TypeReg | 0o644, Data: append(js, '\n')}); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
