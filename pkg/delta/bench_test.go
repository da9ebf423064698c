package delta

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkApply: the node's work for a delta, from memory to memory (no
// disk): KESO_DELTA_FROM and KESO_DELTA_TO name two images (bench/delta.sh
// sets them); otherwise a 64 MiB random image with 1 MiB rewritten and
// 100 bytes inserted. It reports the image's MB/s and the bytes allocated.
func BenchmarkApply(b *testing.B) {
	old, new := benchImages(b)
	var data bytes.Buffer
	ix, err := Make(old, new, &data, Options{})
	if err != nil {
		b.Fatal(err)
	}
	dst := &slot{make([]byte, len(new))}
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(dst.b) // nothing already in place: every operation is built
		if _, err := Apply(ix, bytes.NewReader(old), bytes.NewReader(data.Bytes()), dst, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(data.Len()), "data-bytes")
}

func benchImages(b *testing.B) ([]byte, []byte) {
	from, to := os.Getenv("KESO_DELTA_FROM"), os.Getenv("KESO_DELTA_TO")
	if from != "" && to != "" {
		old, err := os.ReadFile(from)
		if err != nil {
			b.Fatal(err)
		}
		new, err := os.ReadFile(to)
		if err != nil {
			b.Fatal(err)
		}
		return old, new
	}
	old := image(1, 64<<20)
	new := append([]byte(nil), old...)
	copy(new[20<<20:], image(2, 1<<20))
	new = append(new[:40<<20:40<<20], append(bytes.Repeat([]byte{1}, 100), new[40<<20:]...)...)
	return old, new
}
