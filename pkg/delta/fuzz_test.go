package delta

import (
	"bytes"
	"testing"
)

// FuzzParseApply: any bytes as an index are refused with an error or,
// once valid, applied to a small old image and data file without a panic,
// nor a write outside the new image (the target is exactly its size, and
// slot panics on an access past it).
func FuzzParseApply(f *testing.F) {
	old := image(1, 64<<10)
	new := append(append([]byte(nil), old[:20<<10]...), image(2, 8<<10)...)
	new = append(new, old[30<<10:]...)
	var data bytes.Buffer
	ix, err := Make(old, new, &data, Options{AverageBits: 10, Piece: 16 << 10, Margin: 4 << 10, MinCopy: 2 << 10})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := ix.Marshal()
	f.Add(good)
	f.Add([]byte(`{"format":"keso-delta/1"}`))
	f.Add([]byte(`{"format":"keso-delta/1","ops":[{"off":0,"len":1,"from":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := Parse(b)
		if err != nil {
			return
		}
		if ix.To.Size > 1<<20 {
			return // a valid index for a large image: nothing more to learn here
		}
		dst := &slot{make([]byte, ix.To.Size)}
		Apply(ix, bytes.NewReader(old), bytes.NewReader(data.Bytes()), dst, nil)
	})
}
