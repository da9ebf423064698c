package e2e

import (
	"regexp"
	"strconv"
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
