package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"testing"
)

// patternData is the data the golden root hashes were made from with
// veritysetup 2.6.1: byte i is (7i + i/4096) mod 251.
func patternData(blocks int) []byte {
	b := make([]byte, blocks*4096)
	for i := range b {
		b[i] = byte((i*7 + i/4096) % 251)
	}
	return b
}

var kesoSalt = bytes.Repeat([]byte("keso"), 8)

// TestGoldenRootHashes needs no veritysetup: the root hashes are what
// "veritysetup format" printed for the same data and salt.
func TestGoldenRootHashes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks int
		salt   []byte
		want   string
	}{
		{"3 blocks, salt keso×8", 3, kesoSalt, "8f4d3ceb14ce5f40fb38d9cbf78d579ae42a9848cba2c4feb417cf1e7f257763"},
		{"3 blocks, no salt", 3, []byte{}, "15234d2ac89e77ad613054eb9a9aa5b3da7954a2d6027eeb76e5b57cb3e871b5"},
		{"129 blocks, salt keso×8", 129, kesoSalt, "46ad9d81239bd8c001fb50facb4aa49cd7c02edf264f6bf1e5439d7fe07f312b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := patternData(tc.blocks)
			tree, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{Salt: tc.salt}, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(tree.RootHash); got != tc.want {
				t.Errorf("root hash = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestGoldenSuperblock: the superblock veritysetup wrote for the 3-block
// golden image parses, and Build writes the same 512 bytes.
func TestGoldenSuperblock(t *testing.T) {
	golden, err := os.ReadFile("testdata/veritysetup-3blocks.sb")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ParseSuperblock(golden)
	if err != nil {
		t.Fatal(err)
	}
	uuid := [16]byte{0x6b, 0x65, 0x73, 0x6f, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1}
	want := &Superblock{Version: 1, HashType: 1, UUID: uuid, Algorithm: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 3, Salt: kesoSalt}
	if got := sb; !bytes.Equal(got.Marshal(), want.Marshal()) || got.Algorithm != want.Algorithm {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	data := patternData(3)
	w := &memWriterAt{}
	if _, err := Build(bytes.NewReader(data), int64(len(data)), w, 0, Params{Salt: kesoSalt, UUID: uuid}, true); err != nil {
		t.Fatal(err)
	}
	if got := w.b[:SuperblockSize]; !bytes.Equal(got, golden) {
		t.Errorf("Build's superblock differs from veritysetup's at byte %d", firstDiff(got, golden))
	}
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		blocks     uint64
		superblock bool
		wantLevels []uint64 // blocks per level, level 0 first
		wantStart  []uint64 // first hash block of each level
		wantSize   int64
	}{
		{1, false, nil, []uint64{}, 0},
		{1, true, nil, []uint64{}, 4096},
		{2, false, []uint64{1}, []uint64{0}, 4096},
		{128, false, []uint64{1}, []uint64{0}, 4096},
		{129, false, []uint64{2, 1}, []uint64{1, 0}, 3 * 4096},
		{129, true, []uint64{2, 1}, []uint64{2, 1}, 4 * 4096},
		{128 * 128, false, []uint64{128, 1}, []uint64{1, 0}, 129 * 4096},
		{128*128 + 1, false, []uint64{129, 2, 1}, []uint64{3, 1, 0}, 132 * 4096},
		// 1 TiB of data: four levels, the tree 1/127 of it.
		{1 << 28, false, []uint64{1 << 21, 1 << 14, 1 << 7, 1}, []uint64{1 + 128 + 16384, 1 + 128, 1, 0}, (1<<21 + 1<<14 + 1<<7 + 1) * 4096},
	} {
		p := Params{DataBlocks: tc.blocks, Salt: []byte{}}
		if err := p.fill(int64(tc.blocks)*4096, false); err != nil {
			t.Fatal(err)
		}
		start := uint64(0)
		if tc.superblock {
			start = 1
		}
		g := p.layout(start)
		if g.perBlock != 128 || g.slot != 32 {
			t.Errorf("%d blocks: %d hashes of %d bytes per block, want 128 of 32", tc.blocks, g.perBlock, g.slot)
		}
		if !equalU64(g.levelBlocks, tc.wantLevels) || !equalU64(g.levelStart, tc.wantStart) {
			t.Errorf("%d blocks: levels %v starting at %v, want %v at %v", tc.blocks, g.levelBlocks, g.levelStart, tc.wantLevels, tc.wantStart)
		}
		if got := int64(start+g.treeBlocks) * 4096; got != tc.wantSize {
			t.Errorf("%d blocks: hash size %d, want %d", tc.blocks, got, tc.wantSize)
		}
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBuildRejects(t *testing.T) {
	data := make([]byte, 8192)
	for _, tc := range []struct {
		name     string
		dataSize int64
		hashOff  int64
		p        Params
		want     error
	}{
		{"empty", 0, 0, Params{}, ErrParams},
		{"not a block multiple", 5000, 0, Params{}, ErrParams},
		{"more blocks than data", 8192, 0, Params{DataBlocks: 3}, ErrParams},
		{"sha1", 8192, 0, Params{Algorithm: "sha1"}, ErrParams},
		{"block size 1000", 8192, 0, Params{DataBlockSize: 1000}, ErrParams},
		{"block size 8192", 8192, 0, Params{HashBlockSize: 8192}, ErrParams},
		{"salt too long", 8192, 0, Params{Salt: make([]byte, 257)}, ErrParams},
		{"hash offset unaligned", 8192, 512, Params{}, ErrParams},
		{"data shorter than said", 16384, 0, Params{}, errShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(bytes.NewReader(data), tc.dataSize, &memWriterAt{}, tc.hashOff, tc.p, false)
			if tc.want == errShort {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

var errShort = errors.New("short read")

// TestBuildDefaults: a nil salt is 32 random bytes, a zero UUID a random
// version 4 one, and DataBlocks may be a prefix of the data.
func TestBuildDefaults(t *testing.T) {
	data := patternData(4)
	a, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Salt) != 32 || bytes.Equal(a.Salt, b.Salt) {
		t.Errorf("salts %x and %x, want two different 32-byte ones", a.Salt, b.Salt)
	}
	if a.UUID[6]>>4 != 4 || a.UUID == b.UUID {
		t.Errorf("UUIDs %x and %x, want two different version 4 ones", a.UUID, b.UUID)
	}
	if a.DataBlocks != 4 || a.DataBlockSize != 4096 || a.HashBlockSize != 4096 || a.Algorithm != "sha256" {
		t.Errorf("params %+v, want 4 blocks of 4096, sha256", a.Params)
	}
	prefix, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{DataBlocks: 3, Salt: kesoSalt}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(prefix.RootHash), "8f4d3ceb14ce5f40fb38d9cbf78d579ae42a9848cba2c4feb417cf1e7f257763"; got != want {
		t.Errorf("root of the first 3 of 4 blocks = %s, want %s", got, want)
	}
}

func TestVerifyFindsCorruption(t *testing.T) {
	const blocks = 129*128 + 5 // three levels: 130, 2 and 1 blocks
	data := randomData(blocks, 1)
	for _, superblock := range []bool{false, true} {
		hash := &memWriterAt{}
		tree, err := Build(bytes.NewReader(data), int64(len(data)), hash, 0, Params{}, superblock)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(bytes.NewReader(data), bytes.NewReader(hash.b), tree); err != nil {
			t.Fatalf("superblock %v: Verify of a good tree: %v", superblock, err)
		}
		sb := int64(0)
		if superblock {
			sb = 4096
		}
		for _, tc := range []struct {
			name     string
			dataByte int64 // flip this data byte, or
			hashByte int64 // this byte of the hash area (when >= 0)
			want     CorruptionError
		}{
			{"first data byte", 0, -1, CorruptionError{Data: true, Block: 0, Offset: 0}},
			{"middle data block", 8000*4096 + 17, -1, CorruptionError{Data: true, Block: 8000, Offset: 8000 * 4096}},
			{"last data byte", blocks*4096 - 1, -1, CorruptionError{Data: true, Block: blocks - 1, Offset: (blocks - 1) * 4096}},
			{"top hash block", -1, sb + 100, CorruptionError{Level: 2, Block: 0, Offset: sb}},
			{"level 1 padding", -1, sb + 2*4096 + 4000, CorruptionError{Level: 1, Block: 1, Offset: sb + 2*4096}},
			{"level 0 block 129", -1, sb + 3*4096 + 129*4096 + 5, CorruptionError{Level: 0, Block: 129, Offset: sb + 3*4096 + 129*4096}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d, h := bytes.Clone(data), bytes.Clone(hash.b)
				if tc.hashByte >= 0 {
					h[tc.hashByte] ^= 0x10
				} else {
					d[tc.dataByte] ^= 0x10
				}
				err := Verify(bytes.NewReader(d), bytes.NewReader(h), tree)
				var ce *CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a *CorruptionError", err)
				}
				if *ce != tc.want {
					t.Errorf("got %+v, want %+v", *ce, tc.want)
				}
			})
		}
		wrongRoot := *tree
		wrongRoot.RootHash = bytes.Clone(tree.RootHash)
		wrongRoot.RootHash[31] ^= 1
		var ce *CorruptionError
		if err := Verify(bytes.NewReader(data), bytes.NewReader(hash.b), &wrongRoot); !errors.As(err, &ce) || ce.Level != 2 {
			t.Errorf("wrong root hash: err = %v, want a corrupt top block", err)
		}
	}
}

func TestVerifyOneBlock(t *testing.T) {
	data := patternData(1)
	tree, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(bytes.NewReader(data), bytes.NewReader(nil), tree); err != nil {
		t.Fatal(err)
	}
	data[9] ^= 1
	var ce *CorruptionError
	if err := Verify(bytes.NewReader(data), bytes.NewReader(nil), tree); !errors.As(err, &ce) || !ce.Data || ce.Block != 0 {
		t.Errorf("err = %v, want data block 0 corrupt", err)
	}
}

func TestTable(t *testing.T) {
	data := patternData(3)
	for _, tc := range []struct {
		name       string
		salt       []byte
		superblock bool
		hashOff    int64
		opts       []string
		want       string
	}{
		{"keso", kesoSalt, false, 0, nil,
			"0 24 verity 1 /dev/sda2 /dev/sda3 4096 4096 3 0 sha256 8f4d3ceb14ce5f40fb38d9cbf78d579ae42a9848cba2c4feb417cf1e7f257763 6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f"},
		{"superblock after data", kesoSalt, true, 3 * 4096, nil,
			"0 24 verity 1 /dev/sda2 /dev/sda3 4096 4096 3 4 sha256 8f4d3ceb14ce5f40fb38d9cbf78d579ae42a9848cba2c4feb417cf1e7f257763 6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f6b65736f"},
		{"no salt, options", []byte{}, false, 0, []string{OptRestartOnCorruption, OptIgnoreZeroBlocks},
			"0 24 verity 1 /dev/sda2 /dev/sda3 4096 4096 3 0 sha256 15234d2ac89e77ad613054eb9a9aa5b3da7954a2d6027eeb76e5b57cb3e871b5 - 2 restart_on_corruption ignore_zero_blocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &memWriterAt{}
			tree, err := Build(bytes.NewReader(data), int64(len(data)), w, tc.hashOff, Params{Salt: tc.salt}, tc.superblock)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tree.Table("/dev/sda2", "/dev/sda3", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("table\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	tree, _ := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{}, false)
	for _, bad := range [][3]string{{"/dev/a", "/dev/b", "restart"}, {"/dev/a b", "/dev/b", ""}, {"", "/dev/b", ""}} {
		var opts []string
		if bad[2] != "" {
			opts = []string{bad[2]}
		}
		if _, err := tree.Table(bad[0], bad[1], opts...); !errors.Is(err, ErrParams) {
			t.Errorf("Table(%q, %q, %q): err = %v, want ErrParams", bad[0], bad[1], opts, err)
		}
	}
}

func BenchmarkBuild60MiB(b *testing.B) {
	data := randomData(60<<20/4096, 3)
	hash := &memWriterAt{b: make([]byte, 0, 1<<20)}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		hash.b = hash.b[:0]
		if _, err := Build(bytes.NewReader(data), int64(len(data)), hash, 0, Params{}, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify60MiB(b *testing.B) {
	data := randomData(60<<20/4096, 3)
	hash := &memWriterAt{}
	tree, err := Build(bytes.NewReader(data), int64(len(data)), hash, 0, Params{}, true)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if err := Verify(bytes.NewReader(data), bytes.NewReader(hash.b), tree); err != nil {
			b.Fatal(err)
		}
	}
}
