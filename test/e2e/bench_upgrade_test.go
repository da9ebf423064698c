package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// upgradeNumbersRE is the summary line of keso upgrade.
var upgradeNumbersRE = regexp.MustCompile(`(\d+) bytes, (\d+) downloaded, fetch (\S+), verify (\S+), write (\S+), read back ([^\s,]+)(?:, dm-verity tree ([^\s,]+))?`)

// BenchmarkUpgrade runs `keso upgrade` (v1 → v2, amd64) inside a node,
// the image served on the host's loopback, and reports the medians of the
// steps keso upgrade measures itself: download, verify (sha256 +
// signature + version), slot write (with sync), read back and compare,
// plus the whole command as seen over SSH and the bytes downloaded. Each
// iteration arms slot b again (the running slot a stays committed).
//
//	go test -run '^$' -bench BenchmarkUpgrade -benchtime 3x ./test/e2e   (bench/upgrade.sh)
func BenchmarkUpgrade(b *testing.B) {
	skipUnlessE2E(b)
	v1, v2 := upgradeReleases(b, "amd64")
	srv := serveReleases(b)
	url := srv.publish("v2", upgradeImage(b, v2))
	n := newNode(b, "bench-upgrade", v1)
	vm, _ := n.bootsUntil("v1", "a", 1)
	defer vm.Stop()
	c := n.ssh()
	defer c.Close()
	var fetch, verify, write, readBack, verityTree, total []float64
	var image, downloaded float64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		out, code := guestRun(c, "keso upgrade --image "+url)
		took := time.Since(start)
		if code != 0 {
			b.Fatalf("keso upgrade: exit %d\n%s", code, out)
		}
		m := upgradeNumbersRE.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("keso upgrade printed no summary:\n%s", out)
		}
		image, _ = strconv.ParseFloat(m[1], 64)
		downloaded, _ = strconv.ParseFloat(m[2], 64)
		for j, dst := range []*[]float64{&fetch, &verify, &write, &readBack, &verityTree} {
			d, err := time.ParseDuration(m[3+j])
			if err != nil {
				b.Fatalf("duration %q: %v", m[3+j], err)
			}
			*dst = append(*dst, d.Seconds())
		}
		total = append(total, took.Seconds())
	}
	b.ReportMetric(image/(1<<20), "MiB-image")
	b.ReportMetric(downloaded/(1<<20), "MiB-downloaded")
	b.ReportMetric(median(fetch), "s-fetch")
	b.ReportMetric(median(verify), "s-verify")
	b.ReportMetric(median(write), "s-write")
	b.ReportMetric(median(readBack), "s-readback")
	b.ReportMetric(median(verityTree), "s-verity-tree")
	b.ReportMetric(median(total), "s-total")
	b.ReportMetric(0, "ns/op")
}

// peakMemoryRE is keso upgrade's peak resident set in its summary.
var peakMemoryRE = regexp.MustCompile(`peak memory ([0-9.]+) MiB`)

// BenchmarkUpgradeDelta is the small-box target: on one node
// (KESO_BENCH_ARCH, default armv7: the Pi 3's 32-bit ARM, QEMU TCG, one
// vCPU, 1 GiB), `keso upgrade` v1 → v2 from a delta and from the whole
// image, each with the download held to a 10 Mbit/s link (--max-rate
// 1250k; KESO_BENCH_RATE bytes a second), one after the other in each
// iteration; the releases have uncompressed roots (KESO_BENCH_COMPRESSION
// =zstd: the profiles' zstd roots). It reports the medians of the whole commands, the full
// image's download time at that rate (its size × 8 ÷ the rate: the
// bound is twice that), the ratio of the delta upgrade to it, the bytes
// fetched and keso upgrade's peak memory (getrusage).
//
//	go test -run '^$' -bench BenchmarkUpgradeDelta -benchtime 2x ./test/e2e   (bench/upgrade-delta.sh)
func BenchmarkUpgradeDelta(b *testing.B) {
	skipUnlessE2E(b)
	arch := os.Getenv("KESO_BENCH_ARCH")
	if arch == "" {
		arch = "armv7"
	}
	rate := int64(1250000)
	if s := os.Getenv("KESO_BENCH_RATE"); s != "" {
		r, err := strconv.ParseInt(s, 10, 64)
		if err != nil || r <= 0 {
			b.Fatalf("KESO_BENCH_RATE=%q: want bytes a second", s)
		}
		rate = r
	}
	v1, v2 := deltaReleases(b, arch)
	if os.Getenv("KESO_BENCH_COMPRESSION") == "zstd" {
		v1, v2 = upgradeReleases(b, arch)
	}
	srv := serveReleases(b)
	full := srv.publish("full", upgradeImage(b, v2))
	withDelta, _, _, _ := srv.publishDelta(b, "delta", upgradeImage(b, v1), upgradeImage(b, v2), "1.0.0", "2.0.0")
	fi, err := os.Stat(upgradeImage(b, v2))
	if err != nil {
		b.Fatal(err)
	}
	n := newNode(b, "bench-delta-"+arch, v1)
	vm, _ := n.bootsUntil("v1", "a", 1)
	defer vm.Stop()
	c := n.ssh()
	defer c.Close()
	type run struct{ total, mem, fetched []float64 }
	runs := map[string]*run{"delta": {}, "full": {}}
	for i := 0; i < b.N; i++ {
		for _, kind := range []string{"delta", "full"} {
			url := map[string]string{"delta": withDelta, "full": full}[kind]
			// Slot b (vda3 on the raw disk) empty: nothing of an earlier
			// run is kept by the delta's applier.
			if out, code := guestRun(c, "dd if=/dev/zero of=/dev/vda3 bs=1048576 count=160 2>&1 && sync"); code != 0 {
				b.Fatalf("wipe slot b: exit %d\n%s", code, out)
			}
			start := time.Now()
			out, code := guestRun(c, fmt.Sprintf("keso upgrade --max-rate %d --image %s", rate, url))
			took := time.Since(start)
			m, mm := upgradeNumbersRE.FindStringSubmatch(out), peakMemoryRE.FindStringSubmatch(out)
			if code != 0 || m == nil || mm == nil || kind == "delta" != strings.Contains(out, "built from a delta") {
				b.Fatalf("keso upgrade (%s): exit %d\n%s", kind, code, out)
			}
			r := runs[kind]
			got, _ := strconv.ParseFloat(m[2], 64)
			mem, _ := strconv.ParseFloat(mm[1], 64)
			r.total, r.mem, r.fetched = append(r.total, took.Seconds()), append(r.mem, mem), append(r.fetched, got)
			b.Logf("%s: %s in %s", kind, strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]), took.Round(100*time.Millisecond))
		}
	}
	download := float64(fi.Size()) / float64(rate)
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB-image")
	b.ReportMetric(download, "s-full-download")
	b.ReportMetric(median(runs["delta"].total), "s-delta-upgrade")
	b.ReportMetric(median(runs["full"].total), "s-full-upgrade")
	b.ReportMetric(median(runs["delta"].total)/download, "delta/download")
	b.ReportMetric(median(runs["delta"].fetched)/(1<<20), "MiB-delta-fetched")
	b.ReportMetric(median(runs["delta"].mem), "MiB-delta-peak")
	b.ReportMetric(median(runs["full"].mem), "MiB-full-peak")
	b.ReportMetric(0, "ns/op")
}
