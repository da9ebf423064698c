package e2e

import (
	"sort"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// BenchmarkBoot measures QEMU start to the k3s handoff (the stand-in's
// line) for every amd64 boot path. Run it with bench/boot.sh, which uses
// -benchtime 3x and records the medians in bench/RESULTS.md.
func BenchmarkBoot(b *testing.B) {
	skipUnlessE2E(b)
	paths := []struct {
		name string
		boot func(b *testing.B) time.Duration
	}{
		{"iso-bios-cd", func(b *testing.B) time.Duration { _, d := bootISO(b, "bench-iso-bios-cd", qemu.BIOS, false); return d }},
		{"iso-uefi-cd", func(b *testing.B) time.Duration { _, d := bootISO(b, "bench-iso-uefi-cd", qemu.UEFI, false); return d }},
		{"iso-uefi-disk", func(b *testing.B) time.Duration { _, d := bootISO(b, "bench-iso-uefi-disk", qemu.UEFI, true); return d }},
		{"iso-bios-disk", func(b *testing.B) time.Duration { _, d := bootISO(b, "bench-iso-bios-disk", qemu.BIOS, true); return d }},
		{"raw-uefi", func(b *testing.B) time.Duration { _, d := bootRawDisk(b, "bench-raw-uefi"); return d }},
		{"netboot-ipxe", func(b *testing.B) time.Duration { _, d := bootNetbootIPXE(b, "bench-netboot-ipxe"); return d }},
	}
	artifacts(b, "amd64") // build outside the timed loops
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				ds = append(ds, p.boot(b)) // each boot stops its VM before returning
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			if len(ds) > 0 {
				b.ReportMetric(ds[len(ds)/2].Seconds(), "s-median-handoff")
				b.ReportMetric(ds[0].Seconds(), "s-min-handoff")
				b.ReportMetric(ds[len(ds)-1].Seconds(), "s-max-handoff")
			}
		})
	}
}
