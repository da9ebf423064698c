package e2e

import (
	"sort"
	"testing"
	"time"
)

// BenchmarkRPiBoot measures QEMU start to the k3s handoff for the arm64
// Raspberry Pi card in QEMU's raspi3b (direct kernel boot: the Pi firmware
// and U-Boot stages are not emulated). go test -bench RPiBoot -benchtime 3x.
func BenchmarkRPiBoot(b *testing.B) {
	skipUnlessE2E(b)
	needTools(b, "mtype", "mcopy")
	a := artifacts(b, "arm64") // build outside the timed loop
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		_, _, d := bootRPi(b, a, "bench-rpi3b")
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		b.ReportMetric(ds[len(ds)/2].Seconds(), "s-median-handoff")
		b.ReportMetric(ds[0].Seconds(), "s-min-handoff")
		b.ReportMetric(ds[len(ds)-1].Seconds(), "s-max-handoff")
	}
}
