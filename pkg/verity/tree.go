package verity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Defaults, and the limits Build accepts.
const (
	DefaultBlockSize = 4096     // data and hash block size
	DefaultSaltSize  = 32       // random salt bytes when Params.Salt is nil
	DefaultAlgorithm = "sha256" // the only algorithm keso builds
	MaxSaltSize      = 256      // what the superblock can hold
	minBlockSize     = 512
	maxBlockSize     = 4096 // dm-verity wants blocks no larger than a page
	readChunk        = 1 << 20
)

// Params are the choices a hash tree is built with. The zero value of each
// field means its default.
type Params struct {
	// DataBlocks is the number of data blocks the tree covers; 0 means
	// dataSize / DataBlockSize (dataSize must then be a multiple of it).
	DataBlocks    uint64
	DataBlockSize int // 0: 4096
	HashBlockSize int // 0: 4096
	// Salt is hashed in front of every block. nil means 32 random bytes;
	// a non-nil empty slice means no salt. A reproducible build passes one.
	Salt      []byte
	Algorithm string // "" or "sha256"
	// UUID goes into the superblock only (veritysetup wants one there);
	// all zero means a random (version 4) UUID.
	UUID [16]byte
}

// Tree describes a built hash tree: everything the kernel table, Verify
// and a later Open need.
type Tree struct {
	Params            // as used: defaults filled in, Salt and UUID chosen
	RootHash   []byte // sha256 of the top hash block (or of the only data block)
	HashOffset int64  // byte offset of the hash area on the hash device (its superblock, if any)
	Superblock bool   // a veritysetup superblock is at HashOffset
	// HashStartBlock is the hash-block index on the hash device where the
	// tree itself begins: the table's hash_start_block.
	HashStartBlock uint64
	HashSize       int64 // bytes of the hash area, superblock included
}

// CorruptionError says where data and tree disagree.
type CorruptionError struct {
	Data   bool   // a data block (else a hash block of the tree)
	Level  int    // tree level of a hash block; 0 is the one hashing the data
	Block  uint64 // data block index, or hash block index within its level
	Offset int64  // byte offset on the data device, or on the hash device
}

func (e *CorruptionError) Error() string {
	if e.Data {
		return fmt.Sprintf("data block %d (offset %d) does not match the hash tree", e.Block, e.Offset)
	}
	return fmt.Sprintf("hash block %d of level %d (offset %d) does not match the tree above it", e.Block, e.Level, e.Offset)
}

// ErrParams is wrapped by every error about unusable parameters.
var ErrParams = errors.New("verity: bad parameters")

// geometry is where each level of a tree lies on the hash device.
type geometry struct {
	perBlock    uint64   // hashes in one hash block (a power of two)
	slot        int      // bytes per hash entry: HashBlockSize / perBlock
	levelStart  []uint64 // absolute hash-block index of each level's first block
	levelBlocks []uint64 // blocks in each level
	treeBlocks  uint64
}

// fill checks p and fills in its defaults. With draw, a nil salt and a zero
// UUID are drawn from crypto/rand; without, a nil salt is no salt.
func (p *Params) fill(dataSize int64, draw bool) error {
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	if p.Algorithm == "" {
		p.Algorithm = DefaultAlgorithm
	}
	if p.Algorithm != DefaultAlgorithm {
		return fmt.Errorf("%w: algorithm %q (only %s)", ErrParams, p.Algorithm, DefaultAlgorithm)
	}
	for _, bs := range []int{p.DataBlockSize, p.HashBlockSize} {
		if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
			return fmt.Errorf("%w: block size %d (a power of two from %d to %d)", ErrParams, bs, minBlockSize, maxBlockSize)
		}
	}
	if dataSize < 0 {
		return fmt.Errorf("%w: data size %d", ErrParams, dataSize)
	}
	if p.DataBlocks == 0 {
		if dataSize%int64(p.DataBlockSize) != 0 {
			return fmt.Errorf("%w: data size %d is not a multiple of the data block size %d (pad the image)", ErrParams, dataSize, p.DataBlockSize)
		}
		p.DataBlocks = uint64(dataSize / int64(p.DataBlockSize))
	}
	if p.DataBlocks == 0 {
		return fmt.Errorf("%w: no data blocks", ErrParams)
	}
	if p.DataBlocks > uint64(dataSize)/uint64(p.DataBlockSize) {
		return fmt.Errorf("%w: %d data blocks of %d bytes need %d bytes of data, have %d", ErrParams,
			p.DataBlocks, p.DataBlockSize, p.DataBlocks*uint64(p.DataBlockSize), dataSize)
	}
	if p.Salt == nil && !draw {
		p.Salt = []byte{}
	}
	if p.Salt == nil {
		p.Salt = make([]byte, DefaultSaltSize)
		if _, err := rand.Read(p.Salt); err != nil {
			return fmt.Errorf("verity: salt: %w", err)
		}
	}
	if len(p.Salt) > MaxSaltSize {
		return fmt.Errorf("%w: salt of %d bytes (at most %d)", ErrParams, len(p.Salt), MaxSaltSize)
	}
	if p.UUID == ([16]byte{}) && draw {
		if _, err := rand.Read(p.UUID[:]); err != nil {
			return fmt.Errorf("verity: uuid: %w", err)
		}
		p.UUID[6] = p.UUID[6]&0x0f | 0x40
		p.UUID[8] = p.UUID[8]&0x3f | 0x80
	}
	return nil
}

// layout computes the levels as the kernel does: as many levels as it
// takes for the top one to be a single block (none for one data block),
// stored top level first from hash block startBlock on.
func (p *Params) layout(startBlock uint64) geometry {
	digest := sha256.Size
	per := uint64(1)
	for per*2*uint64(digest) <= uint64(p.HashBlockSize) {
		per *= 2
	}
	g := geometry{perBlock: per, slot: p.HashBlockSize / int(per)}
	for n := p.DataBlocks; n > 1; {
		n = (n + per - 1) / per
		g.levelBlocks = append(g.levelBlocks, n)
		g.treeBlocks += n
	}
	g.levelStart = make([]uint64, len(g.levelBlocks))
	pos := startBlock
	for i := len(g.levelBlocks) - 1; i >= 0; i-- {
		g.levelStart[i] = pos
		pos += g.levelBlocks[i]
	}
	return g
}

// hasher computes sha256(salt || block).
type hasher struct {
	h    hash.Hash
	salt []byte
}

func newHasher(salt []byte) *hasher { return &hasher{h: sha256.New(), salt: salt} }

func (h *hasher) sum(dst, block []byte) []byte {
	h.h.Reset()
	h.h.Write(h.salt)
	h.h.Write(block)
	return h.h.Sum(dst[:0])
}

// Build hashes the first p.DataBlocks blocks of data into a dm-verity
// tree written to hash at hashOffset (a multiple of the hash block size;
// the hash area may share a file with the data, after it). With
// superblock, a veritysetup-compatible superblock fills the first hash
// block and the tree follows it. Memory stays at one hash block per level
// plus a 1 MiB read buffer. For a reproducible image pass Salt and UUID
// (keso-build can derive them from the image's version and content); the
// defaults are random. Errors name the operation and the byte offset; the
// caller adds the file.
func Build(data io.ReaderAt, dataSize int64, hash io.WriterAt, hashOffset int64, p Params, superblock bool) (*Tree, error) {
	if err := p.fill(dataSize, true); err != nil {
		return nil, err
	}
	if hashOffset < 0 || hashOffset%int64(p.HashBlockSize) != 0 {
		return nil, fmt.Errorf("%w: hash offset %d is not a multiple of the hash block size %d", ErrParams, hashOffset, p.HashBlockSize)
	}
	t := &Tree{Params: p, HashOffset: hashOffset, Superblock: superblock}
	t.HashStartBlock = uint64(hashOffset / int64(p.HashBlockSize))
	if superblock {
		t.HashStartBlock++
	}
	g := p.layout(t.HashStartBlock)
	t.HashSize = int64(t.HashStartBlock*uint64(p.HashBlockSize)) - hashOffset + int64(g.treeBlocks)*int64(p.HashBlockSize)

	if superblock {
		sb := t.superblock()
		blk := make([]byte, p.HashBlockSize)
		copy(blk, sb.Marshal())
		if _, err := hash.WriteAt(blk, hashOffset); err != nil {
			return nil, fmt.Errorf("verity: write superblock at %d: %w", hashOffset, err)
		}
	}

	b := &builder{g: g, hs: newHasher(p.Salt), hash: hash, bs: int64(p.HashBlockSize)}
	b.bufs = make([][]byte, len(g.levelBlocks))
	b.n = make([]uint64, len(g.levelBlocks))
	b.next = make([]uint64, len(g.levelBlocks))
	for i := range b.bufs {
		b.bufs[i] = make([]byte, p.HashBlockSize)
	}

	dbs := int64(p.DataBlockSize)
	chunk := make([]byte, readChunk-readChunk%dbs)
	digest := make([]byte, sha256.Size)
	for blk := uint64(0); blk < p.DataBlocks; {
		n := min(uint64(len(chunk))/uint64(dbs), p.DataBlocks-blk)
		buf := chunk[:n*uint64(dbs)]
		off := int64(blk) * dbs
		if got, err := data.ReadAt(buf, off); got < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("verity: read data at %d: %w", off+int64(got), err)
		}
		for i := uint64(0); i < n; i++ {
			digest = b.hs.sum(digest, buf[i*uint64(dbs):(i+1)*uint64(dbs)])
			if err := b.push(0, digest); err != nil {
				return nil, err
			}
		}
		blk += n
	}
	for i := range b.bufs {
		if err := b.flush(i); err != nil {
			return nil, err
		}
	}
	for i, want := range g.levelBlocks {
		if b.next[i] != want {
			return nil, fmt.Errorf("verity: internal: level %d has %d blocks, want %d", i, b.next[i], want)
		}
	}
	if b.root == nil {
		return nil, errors.New("verity: internal: no root hash")
	}
	t.RootHash = b.root
	return t, nil
}

// builder keeps the one partly filled hash block of each level.
type builder struct {
	g    geometry
	hs   *hasher
	hash io.WriterAt
	bs   int64
	bufs [][]byte
	n    []uint64 // entries in bufs[i]
	next []uint64 // index in level i of the block bufs[i] becomes
	root []byte
}

// push adds a hash to level i; a hash pushed above the top level is the root.
func (b *builder) push(i int, digest []byte) error {
	if i == len(b.bufs) {
		b.root = bytes.Clone(digest)
		return nil
	}
	copy(b.bufs[i][b.n[i]*uint64(b.g.slot):], digest)
	b.n[i]++
	if b.n[i] == b.g.perBlock {
		return b.flush(i)
	}
	return nil
}

// flush writes level i's block (zero-padded) and pushes its hash upwards.
func (b *builder) flush(i int) error {
	if b.n[i] == 0 {
		return nil
	}
	off := int64(b.g.levelStart[i]+b.next[i]) * b.bs
	if _, err := b.hash.WriteAt(b.bufs[i], off); err != nil {
		return fmt.Errorf("verity: write hash block %d of level %d at %d: %w", b.next[i], i, off, err)
	}
	var d [sha256.Size]byte
	digest := b.hs.sum(d[:], b.bufs[i])
	clear(b.bufs[i])
	b.n[i] = 0
	b.next[i]++
	return b.push(i+1, digest)
}

// Verify checks data against the tree on hash and t.RootHash, top down as
// the kernel does: the top hash block against the root hash, each level
// against the one above it, then every data block. The first mismatch is
// returned as a *CorruptionError (wrapped); a read failure as itself.
// With t.Superblock, the superblock at t.HashOffset must also agree with t.
func Verify(data, hash io.ReaderAt, t *Tree) error {
	p := t.Params
	if p.DataBlocks == 0 {
		return fmt.Errorf("%w: no data blocks", ErrParams)
	}
	if err := p.fill(int64(p.DataBlocks)*int64(max(p.DataBlockSize, DefaultBlockSize)), false); err != nil {
		return err
	}
	if len(t.RootHash) != sha256.Size {
		return fmt.Errorf("%w: root hash of %d bytes, want %d", ErrParams, len(t.RootHash), sha256.Size)
	}
	start := uint64(t.HashOffset / int64(p.HashBlockSize))
	if t.Superblock {
		start++
	}
	if t.HashOffset < 0 || t.HashOffset%int64(p.HashBlockSize) != 0 || t.HashStartBlock != start {
		return fmt.Errorf("%w: hash offset %d, superblock %v and hash start block %d disagree", ErrParams, t.HashOffset, t.Superblock, t.HashStartBlock)
	}
	if t.Superblock {
		sb, err := ReadSuperblock(hash, t.HashOffset)
		if err != nil {
			return err
		}
		want := t.superblock()
		want.UUID = sb.UUID // names the device; the tree does not depend on it
		if !bytes.Equal(sb.Marshal(), want.Marshal()) {
			return fmt.Errorf("verity: superblock at %d does not match the tree's parameters", t.HashOffset)
		}
	}
	g := p.layout(t.HashStartBlock)
	hs := newHasher(p.Salt)
	bs := int64(p.HashBlockSize)

	// parent holds the hashes that the level being checked must match.
	parent := t.RootHash
	for i := len(g.levelBlocks) - 1; i >= 0; i-- {
		n := g.levelBlocks[i]
		level := make([]byte, int64(n)*bs)
		off := int64(g.levelStart[i]) * bs
		if got, err := hash.ReadAt(level, off); got < len(level) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("verity: read level %d at %d: %w", i, off+int64(got), err)
		}
		var d [sha256.Size]byte
		for j := uint64(0); j < n; j++ {
			sum := hs.sum(d[:], level[int64(j)*bs:int64(j+1)*bs])
			want := parent[j*uint64(g.slot):][:sha256.Size] // the root hash for the top level
			if !bytes.Equal(sum, want) {
				return fmt.Errorf("verity: %w", &CorruptionError{Level: i, Block: j, Offset: off + int64(j)*bs})
			}
		}
		parent = level
	}

	dbs := int64(p.DataBlockSize)
	slot := uint64(g.slot)
	if len(g.levelBlocks) == 0 {
		slot = 0 // the only data block hashes straight to the root
	}
	chunk := make([]byte, readChunk-readChunk%dbs)
	var d [sha256.Size]byte
	for blk := uint64(0); blk < p.DataBlocks; {
		n := min(uint64(len(chunk))/uint64(dbs), p.DataBlocks-blk)
		buf := chunk[:n*uint64(dbs)]
		off := int64(blk) * dbs
		if got, err := data.ReadAt(buf, off); got < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("verity: read data at %d: %w", off+int64(got), err)
		}
		for k := uint64(0); k < n; k++ {
			sum := hs.sum(d[:], buf[k*uint64(dbs):(k+1)*uint64(dbs)])
			b := blk + k
			if !bytes.Equal(sum, parent[b*slot:][:sha256.Size]) {
				return fmt.Errorf("verity: %w", &CorruptionError{Data: true, Block: b, Offset: int64(b) * dbs})
			}
		}
		blk += n
	}
	return nil
}

// superblock is t's superblock as veritysetup writes it.
func (t *Tree) superblock() *Superblock {
	return &Superblock{
		Version:       1,
		HashType:      1,
		UUID:          t.UUID,
		Algorithm:     t.Algorithm,
		DataBlockSize: uint32(t.DataBlockSize),
		HashBlockSize: uint32(t.HashBlockSize),
		DataBlocks:    t.DataBlocks,
		Salt:          t.Salt,
	}
}

// TreeFromSuperblock describes the tree behind the superblock that is at
// hashOffset on its hash device, with the root hash given separately (the
// superblock never holds it: the root hash is what must be trusted).
func TreeFromSuperblock(sb *Superblock, hashOffset int64, rootHash []byte) (*Tree, error) {
	if sb.HashType != 1 {
		return nil, fmt.Errorf("%w: hash type %d (only 1, the normal one)", ErrParams, sb.HashType)
	}
	p := Params{
		DataBlocks:    sb.DataBlocks,
		DataBlockSize: int(sb.DataBlockSize),
		HashBlockSize: int(sb.HashBlockSize),
		Salt:          bytes.Clone(sb.Salt),
		Algorithm:     sb.Algorithm,
		UUID:          sb.UUID,
	}
	if err := p.fill(int64(p.DataBlocks)*int64(p.DataBlockSize), false); err != nil {
		return nil, err
	}
	if hashOffset < 0 || hashOffset%int64(p.HashBlockSize) != 0 {
		return nil, fmt.Errorf("%w: hash offset %d is not a multiple of the hash block size %d", ErrParams, hashOffset, p.HashBlockSize)
	}
	t := &Tree{Params: p, RootHash: bytes.Clone(rootHash), HashOffset: hashOffset, Superblock: true}
	t.HashStartBlock = uint64(hashOffset/int64(p.HashBlockSize)) + 1
	g := p.layout(t.HashStartBlock)
	t.HashSize = int64(1+g.treeBlocks) * int64(p.HashBlockSize)
	return t, nil
}
