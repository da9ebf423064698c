package delta

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// image is n pseudo-random bytes (incompressible, like a packed binary),
// the same for the same seed.
func image(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// slot is an in-memory target.
type slot struct{ b []byte }

func (s *slot) ReadAt(p []byte, off int64) (int, error)  { return copy(p, s.b[off:]), nil }
func (s *slot) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }

func makeDelta(t *testing.T, old, new []byte) (Index, []byte) {
	t.Helper()
	var data bytes.Buffer
	ix, err := Make(old, new, &data, Options{})
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	return ix, data.Bytes()
}

func apply(t *testing.T, ix Index, old, data []byte, dst *slot) Stats {
	t.Helper()
	if err := Check(ix, bytes.NewReader(old), bytes.NewReader(data)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	st, err := Apply(ix, bytes.NewReader(old), bytes.NewReader(data), dst, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func TestRoundTrip(t *testing.T) {
	old := image(1, 3<<20)
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), old...)) }
	tests := []struct {
		name    string
		new     []byte
		maxData int // bytes of data file at most
	}{
		{"same", old, 0},
		{"one byte changed", edit(func(b []byte) []byte { b[1<<20] ^= 0xff; return b }), 4 << 10},
		{"100 bytes inserted", edit(func(b []byte) []byte {
			return append(b[:2<<20:2<<20], append(bytes.Repeat([]byte{7}, 100), b[2<<20:]...)...)
		}), 4 << 10},
		{"a block moved", edit(func(b []byte) []byte {
			moved := append([]byte(nil), b[:512<<10]...)
			return append(b[512<<10:], moved...)
		}), 32 << 10}, // the two seams' chunks, as literals at worst
		{"unrelated", image(2, 3<<20), 3<<20 + 3<<20/100},
		{"empty", nil, 0},
		{"shorter", old[:1<<20], 4 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, data := makeDelta(t, old, tt.new)
			if got := len(data); got > tt.maxData {
				t.Errorf("data file is %d bytes, want at most %d", got, tt.maxData)
			}
			b, err := ix.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse of Marshal: %v", err)
			}
			dst := &slot{make([]byte, len(tt.new))}
			st := apply(t, back, old, data, dst)
			if !bytes.Equal(dst.b, tt.new) {
				t.Fatalf("applied image differs from the new image")
			}
			if got, want := st.Copied+st.Decoded, int64(len(tt.new)); got != want {
				t.Errorf("copied+decoded = %d, want %d", got, want)
			}
			// A second apply over the finished target keeps everything.
			st = apply(t, back, old, data, dst)
			if got, want := st.Kept, int64(len(tt.new)); got != want {
				t.Errorf("second apply kept %d bytes, want %d", got, want)
			}
		})
	}
}

// TestChunksDeterministic: the same bytes always cut the same way, and an
// insertion moves only the boundaries near it.
func TestChunksDeterministic(t *testing.T) {
	o := Options{}.withDefaults()
	b := image(3, 2<<20)
	c1, err := chunks(b, o)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := chunks(append([]byte(nil), b...), o)
	if len(c1) != len(c2) {
		t.Fatalf("%d chunks, then %d", len(c1), len(c2))
	}
	var total int64
	for i := range c1 {
		if c1[i] != c2[i] {
			t.Fatalf("chunk %d: %v, then %v", i, c1[i], c2[i])
		}
		if c1[i].len < 1<<(o.AverageBits-2) && i < len(c1)-1 || c1[i].len > 1<<(o.AverageBits+2) {
			t.Errorf("chunk %d is %d bytes, outside %d..%d", i, c1[i].len, 1<<(o.AverageBits-2), 1<<(o.AverageBits+2))
		}
		total += c1[i].len
	}
	if total != int64(len(b)) {
		t.Errorf("chunks cover %d bytes, want %d", total, len(b))
	}
	if n := len(c1); n < 64 || n > 256 {
		t.Errorf("%d chunks for 2 MiB, want ~128 (16 KiB average)", n)
	}
	ins := append(append(append([]byte(nil), b[:1<<20]...), "inserted"...), b[1<<20:]...)
	c3, _ := chunks(ins, o)
	ends := map[int64]bool{}
	for _, c := range c1 {
		ends[c.off+c.len] = true
	}
	moved := 0
	for _, c := range c3 {
		e := c.off + c.len
		if e > 1<<20 {
			e -= int64(len("inserted"))
		}
		if !ends[e] {
			moved++
		}
	}
	if moved > 2 {
		t.Errorf("an 8-byte insertion moved %d chunk boundaries, want at most 2", moved)
	}
}

func TestPolIrreducible(t *testing.T) {
	if !Pol.Irreducible() {
		t.Fatal("Pol is not irreducible")
	}
}

// TestBadInput: every bad input is refused with a clear error before
// anything is written to the target.
func TestBadInput(t *testing.T) {
	old := image(1, 1<<20)
	new := append(append([]byte(nil), old[:300<<10]...), image(4, 200<<10)...)
	new = append(new, old[500<<10:]...)
	ix, data := makeDelta(t, old, new)
	good, _ := ix.Marshal()

	tests := []struct {
		name  string
		index []byte
		old   []byte
		data  []byte
		want  string
	}{
		{"truncated index", good[:len(good)/2], old, data, "not JSON"},
		{"index missing its last op", mutate(t, good, func(ix *Index) { ix.Ops = ix.Ops[:len(ix.Ops)-1] }), old, data, "truncated index"},
		{"index from another format", mutate(t, good, func(ix *Index) { ix.Format = "keso-delta/9" }), old, data, "format"},
		{"ops out of order", mutate(t, good, func(ix *Index) { ix.Ops[0], ix.Ops[1] = ix.Ops[1], ix.Ops[0] }), old, data, "in order"},
		{"copy past the old image", mutate(t, good, func(ix *Index) {
			for i := range ix.Ops {
				if ix.Ops[i].From != nil {
					f := ix.From.Size
					ix.Ops[i].From = &f
					return
				}
			}
		}), old, data, "past the old image"},
		{"another running image", good, image(9, 1<<20), data, "running image's sha256"},
		{"truncated data file", good, old, data[:len(data)-1], "truncated"},
		{"a chunk whose bytes are wrong", good, old, flip(data, len(data)/2), "data file's sha256"},
		{"a chunk store missing a chunk", good, old, data[:len(data)/2], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := &slot{bytes.Repeat([]byte{0xAA}, len(new))}
			err := func() error {
				ix, err := Parse(tt.index)
				if err != nil {
					return err
				}
				if err := Check(ix, bytes.NewReader(tt.old), bytes.NewReader(tt.data)); err != nil {
					return err
				}
				_, err = Apply(ix, bytes.NewReader(tt.old), bytes.NewReader(tt.data), dst, nil)
				return err
			}()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if !bytes.Equal(dst.b, bytes.Repeat([]byte{0xAA}, len(new))) {
				t.Errorf("the target was written")
			}
		})
	}
}

// TestApplyChecksEachOp: were a frame to decode to other bytes (Check
// skipped, or a decoder bug), Apply stops before writing them.
func TestApplyChecksEachOp(t *testing.T) {
	old := image(1, 1<<20)
	new := append(append([]byte(nil), old[:300<<10]...), image(4, 200<<10)...)
	ix, data := makeDelta(t, old, new)
	for i := range ix.Ops {
		if ix.Ops[i].Zstd != nil {
			ix.Ops[i].SHA256 = strings.Repeat("0", 64)
		}
	}
	dst := &slot{make([]byte, len(new))}
	_, err := Apply(ix, bytes.NewReader(old), bytes.NewReader(data), dst, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing of it was written") {
		t.Fatalf("got %v, want a refused op", err)
	}
	if !bytes.Equal(dst.b[300<<10:], make([]byte, 200<<10)) {
		t.Errorf("the refused op's bytes were written")
	}
}

func mutate(t *testing.T, b []byte, f func(*Index)) []byte {
	t.Helper()
	ix, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f(&ix)
	out, err := ix.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}
