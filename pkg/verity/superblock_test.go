package verity

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

func TestParseSuperblockRejects(t *testing.T) {
	golden, err := os.ReadFile("testdata/veritysetup-3blocks.sb")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(b []byte) []byte
		valid bool
	}{
		{"as written", func(b []byte) []byte { return b }, true},
		{"longer input (a whole hash block)", func(b []byte) []byte { return append(b, make([]byte, 3584)...) }, true},
		{"short", func(b []byte) []byte { return b[:511] }, false},
		{"signature", func(b []byte) []byte { b[0] = 'V'; return b }, false},
		{"version 2", func(b []byte) []byte { b[offVersion] = 2; return b }, false},
		{"hash type 0 (Chrome OS)", func(b []byte) []byte { b[offHashType] = 0; return b }, true},
		{"hash type 2", func(b []byte) []byte { b[offHashType] = 2; return b }, false},
		{"no algorithm", func(b []byte) []byte { clear(b[offAlg : offAlg+algLen]); return b }, false},
		{"algorithm fills the field", func(b []byte) []byte {
			copy(b[offAlg:], bytes.Repeat([]byte("a"), algLen))
			return b
		}, false},
		{"byte after the algorithm's NUL", func(b []byte) []byte { b[offAlg+10] = 'x'; return b }, false},
		{"control character in algorithm", func(b []byte) []byte { b[offAlg+1] = '\n'; return b }, false},
		{"data block size 4097", func(b []byte) []byte { b[offDataBS] = 1; return b }, false},
		{"hash block size 256", func(b []byte) []byte { b[offHashBS] = 0; b[offHashBS+1] = 1; return b }, false},
		{"no data blocks", func(b []byte) []byte { b[offBlocks] = 0; return b }, false},
		{"salt size 257", func(b []byte) []byte { b[offSaltSize] = 1; b[offSaltSize+1] = 1; return b }, false},
		{"salt size 256", func(b []byte) []byte { b[offSaltSize] = 0; b[offSaltSize+1] = 1; return b }, true},
		{"salt size 16 leaves salt bytes behind", func(b []byte) []byte { b[offSaltSize] = 16; return b }, false},
		{"padding after salt size", func(b []byte) []byte { b[offSaltSize+3] = 1; return b }, false},
		{"tail padding", func(b []byte) []byte { b[511] = 1; return b }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(golden))
			sb, err := ParseSuperblock(b)
			if tc.valid {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				if got := sb.Marshal(); !bytes.Equal(got, b[:SuperblockSize]) {
					t.Errorf("does not round-trip: first difference at %d", firstDiff(got, b))
				}
				return
			}
			if !errors.Is(err, ErrSuperblock) {
				t.Errorf("err = %v, want ErrSuperblock", err)
			}
		})
	}
}

func TestTreeFromSuperblock(t *testing.T) {
	data := patternData(3)
	w := &memWriterAt{}
	built, err := Build(bytes.NewReader(data), int64(len(data)), w, 8192, Params{Salt: kesoSalt}, true)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ReadSuperblock(bytes.NewReader(w.b), 8192)
	if err != nil {
		t.Fatal(err)
	}
	got, err := TreeFromSuperblock(sb, 8192, built.RootHash)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := got.Table("d", "h")
	b, _ := built.Table("d", "h")
	if a != b || got.HashSize != built.HashSize || got.UUID != built.UUID {
		t.Errorf("from superblock: %s (size %d), want %s (size %d)", a, got.HashSize, b, built.HashSize)
	}
	if err := Verify(bytes.NewReader(data), bytes.NewReader(w.b), got); err != nil {
		t.Error(err)
	}
	// A superblock that disagrees with the tree it is checked with.
	other := *built
	other.DataBlocks = 2
	if err := Verify(bytes.NewReader(data), bytes.NewReader(w.b), &other); err == nil {
		t.Error("Verify accepts a superblock with 3 data blocks for a tree of 2")
	}
	other = *built
	other.HashStartBlock--
	if err := Verify(bytes.NewReader(data), bytes.NewReader(w.b), &other); !errors.Is(err, ErrParams) {
		t.Errorf("hash start block on the superblock: err = %v, want ErrParams", err)
	}
	if _, err := ReadSuperblock(bytes.NewReader(w.b[:8192+100]), 8192); err == nil {
		t.Error("ReadSuperblock accepts a truncated superblock")
	}
	sb.HashType = 0
	if _, err := TreeFromSuperblock(sb, 8192, built.RootHash); !errors.Is(err, ErrParams) {
		t.Errorf("hash type 0: err = %v, want ErrParams", err)
	}
}

// FuzzSuperblock: ParseSuperblock either fails or returns a superblock
// that marshals back to the bytes it was parsed from and parses again to
// the same.
func FuzzSuperblock(f *testing.F) {
	golden, err := os.ReadFile("testdata/veritysetup-3blocks.sb")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add((&Superblock{Version: 1, HashType: 0, Algorithm: "sha1", DataBlockSize: 512, HashBlockSize: 1 << 20, DataBlocks: 1 << 63}).Marshal())
	f.Add(make([]byte, SuperblockSize))
	f.Add([]byte("verity\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			if sb != nil {
				t.Fatalf("error %v with a superblock", err)
			}
			if !errors.Is(err, ErrSuperblock) {
				t.Fatalf("error %v does not wrap ErrSuperblock", err)
			}
			return
		}
		m := sb.Marshal()
		if !bytes.Equal(m, b[:SuperblockSize]) {
			t.Fatalf("marshal differs from input at byte %d", firstDiff(m, b))
		}
		again, err := ParseSuperblock(m)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(again.Marshal(), m) || again.Algorithm != sb.Algorithm || !bytes.Equal(again.Salt, sb.Salt) {
			t.Fatalf("re-parse gives %+v, want %+v", again, sb)
		}
		// What parses must also be usable or cleanly refused as a tree.
		if tree, err := TreeFromSuperblock(sb, 0, make([]byte, 32)); err == nil {
			if _, err := tree.Table("/dev/a", "/dev/b"); err != nil {
				t.Fatalf("table of a parsed superblock: %v", err)
			}
		}
	})
}
