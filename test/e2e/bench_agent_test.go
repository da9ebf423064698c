package e2e

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"testing"

	"github.com/keso-os/keso/test/e2e/qemu"
)

var (
	handedOffRE = regexp.MustCompile(`keso: k3s handed off ([0-9.]+)(ms|s) after PID 1 started`)
	rssRE       = regexp.MustCompile(`keso: ready \(keso-init resident memory (\d+) KiB\)`)
)

// BenchmarkAgentBoot boots the amd64 raw disk through UEFI with the
// agent's full system stage (no config beyond the image defaults: DHCP on
// the one NIC) and
// reports the medians of: QEMU start to the k3s handoff, the agent's own
// time from PID 1's start (the initrd's /init) to starting k3s, and
// keso-init's resident memory once the node is ready with k3s running.
//
//	go test -run '^$' -bench BenchmarkAgentBoot -benchtime 3x ./test/e2e
func BenchmarkAgentBoot(b *testing.B) {
	skipUnlessE2E(b)
	a := artifacts(b, "amd64")
	raw := a.file(b, "keso-amd64.img")
	var handoffs, agents, rss []float64
	for i := 0; i < b.N; i++ {
		disk := overlayDisk(b, raw, 0)
		// One NIC on QEMU's user network: the default config's DHCP on the
		// first link with a carrier (a NIC-less VM would wait 10 s for one).
		vm := qemu.Start(b, qemu.Config{LogDir: logDir(b), Name: "bench-agent", Arch: "amd64", Firmware: qemu.UEFI,
			Disks: []string{disk}, Boot: "c", Net: true})
		_, took := handoff(b, vm)
		m, _, err := vm.Expect(handedOffRE, bootTimeout)
		if err != nil {
			b.Fatalf("no handoff time: %v", err)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "ms" {
			v /= 1000
		}
		r, _, err := vm.Expect(rssRE, bootTimeout)
		if err != nil {
			b.Fatalf("no ready line: %v", err)
		}
		kib, _ := strconv.Atoi(r[1])
		vm.Stop()
		handoffs = append(handoffs, took.Seconds())
		agents = append(agents, v)
		rss = append(rss, float64(kib)/1024)
		os.Remove(disk)
	}
	b.ReportMetric(median(handoffs), "s-to-handoff")
	b.ReportMetric(median(agents), "s-pid1-to-k3s")
	b.ReportMetric(median(rss), "MiB-rss")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
