package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SuperblockSize is the size of the superblock; it takes a whole hash
// block on disk, the rest zero.
const SuperblockSize = 512

// The superblock's layout (veritysetup's on-disk header, little endian):
//
//	  0  8  signature "verity\0\0"
//	  8  4  superblock version (1)
//	 12  4  hash type (0 Chrome OS, 1 normal)
//	 16 16  UUID
//	 32 32  algorithm name, NUL-padded
//	 64  4  data block size
//	 68  4  hash block size
//	 72  8  data blocks
//	 80  2  salt size
//	 82  6  zero
//	 88 256 salt, zero-padded
//	344 168 zero
const (
	sbSignature = "verity\x00\x00"
	offVersion  = 8
	offHashType = 12
	offUUID     = 16
	offAlg      = 32
	algLen      = 32
	offDataBS   = 64
	offHashBS   = 68
	offBlocks   = 72
	offSaltSize = 80
	offSalt     = 88
)

// Superblock is veritysetup's header in front of a hash tree. It never
// holds the root hash.
type Superblock struct {
	Version       uint32 // 1
	HashType      uint32 // 1 (0 is Chrome OS's format, which keso does not build)
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// ErrSuperblock is wrapped by every error about a malformed superblock.
var ErrSuperblock = errors.New("verity: bad superblock")

// Marshal returns the 512 bytes of sb. It does not check sb: Parse does.
func (sb *Superblock) Marshal() []byte {
	b := make([]byte, SuperblockSize)
	copy(b, sbSignature)
	le := binary.LittleEndian
	le.PutUint32(b[offVersion:], sb.Version)
	le.PutUint32(b[offHashType:], sb.HashType)
	copy(b[offUUID:offUUID+16], sb.UUID[:])
	copy(b[offAlg:offAlg+algLen], sb.Algorithm)
	le.PutUint32(b[offDataBS:], sb.DataBlockSize)
	le.PutUint32(b[offHashBS:], sb.HashBlockSize)
	le.PutUint64(b[offBlocks:], sb.DataBlocks)
	le.PutUint16(b[offSaltSize:], uint16(len(sb.Salt)))
	copy(b[offSalt:offSalt+MaxSaltSize], sb.Salt)
	return b
}

// ParseSuperblock parses the first 512 bytes of b. It is strict, so that
// what it accepts marshals back to the same bytes: the padding and the
// unused salt and name bytes must be zero, the name printable ASCII, the
// block sizes powers of two from 512 to 1 MiB.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSuperblock, len(b), SuperblockSize)
	}
	b = b[:SuperblockSize]
	if string(b[:len(sbSignature)]) != sbSignature {
		return nil, fmt.Errorf("%w: no %q signature", ErrSuperblock, "verity")
	}
	le := binary.LittleEndian
	sb := &Superblock{
		Version:       le.Uint32(b[offVersion:]),
		HashType:      le.Uint32(b[offHashType:]),
		DataBlockSize: le.Uint32(b[offDataBS:]),
		HashBlockSize: le.Uint32(b[offHashBS:]),
		DataBlocks:    le.Uint64(b[offBlocks:]),
	}
	copy(sb.UUID[:], b[offUUID:])
	if sb.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrSuperblock, sb.Version)
	}
	if sb.HashType > 1 {
		return nil, fmt.Errorf("%w: hash type %d", ErrSuperblock, sb.HashType)
	}
	alg := b[offAlg : offAlg+algLen]
	n := bytes.IndexByte(alg, 0)
	if n <= 0 {
		return nil, fmt.Errorf("%w: algorithm name empty or not NUL-terminated", ErrSuperblock)
	}
	for _, c := range alg[:n] {
		if c <= ' ' || c > '~' {
			return nil, fmt.Errorf("%w: algorithm name %q", ErrSuperblock, alg[:n])
		}
	}
	if !allZero(alg[n:]) {
		return nil, fmt.Errorf("%w: bytes after the algorithm name", ErrSuperblock)
	}
	sb.Algorithm = string(alg[:n])
	for _, bs := range []uint32{sb.DataBlockSize, sb.HashBlockSize} {
		if bs < minBlockSize || bs > 1<<20 || bs&(bs-1) != 0 {
			return nil, fmt.Errorf("%w: block size %d", ErrSuperblock, bs)
		}
	}
	if sb.DataBlocks == 0 {
		return nil, fmt.Errorf("%w: no data blocks", ErrSuperblock)
	}
	saltSize := int(le.Uint16(b[offSaltSize:]))
	if saltSize > MaxSaltSize {
		return nil, fmt.Errorf("%w: salt size %d", ErrSuperblock, saltSize)
	}
	sb.Salt = bytes.Clone(b[offSalt : offSalt+saltSize])
	if !allZero(b[offSaltSize+2:offSalt]) || !allZero(b[offSalt+saltSize:]) {
		return nil, fmt.Errorf("%w: non-zero padding", ErrSuperblock)
	}
	return sb, nil
}

// ReadSuperblock reads and parses the superblock at off in r.
func ReadSuperblock(r io.ReaderAt, off int64) (*Superblock, error) {
	b := make([]byte, SuperblockSize)
	if n, err := r.ReadAt(b, off); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("verity: read superblock at %d: %w", off, err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return nil, fmt.Errorf("read superblock at %d: %w", off, err)
	}
	return sb, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
