package delta

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
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
	// The heap Apply adds above what the images take, sampled every
	// millisecond, with the collector at GOGC=10 so that the peak is what
	// Apply holds, not garbage the default GOGC=100 lets pile up on top of
	// the images in memory: the memory a node needs besides the page cache.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, uint64(0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(dst.b) // nothing already in place: every operation is built
		if _, err := Apply(ix, bytes.NewReader(old), bytes.NewReader(data.Bytes()), dst, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(data.Len()), "data-bytes")
	b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB@GOGC=10")
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
