package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// partOffset is the byte offset of the GPT partition named label in a raw
// disk image.
func partOffset(t testing.TB, img, label string) int64 {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	tbl, ok := pt.(*gpt.Table)
	if !ok {
		t.Fatalf("%s: not a GPT disk", img)
	}
	for _, p := range tbl.Partitions {
		if p.Name == label {
			return int64(p.Start) * int64(tbl.LogicalSectorSize)
		}
	}
	t.Fatalf("%s: no partition %s", img, label)
	return 0
}

// flipByte flips one bit of the byte at off in the file, as a rotting
// card or disk would.
func flipByte(t testing.TB, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[0] ^ 0x10}, off); err != nil {
		t.Fatal(err)
	}
}

var verifiedRE = regexp.MustCompile(`keso-init: slot ([ab]): (\d+) MiB verified by dm-verity \(root hash ([0-9a-f]{16})…\) in (\S+)`)

// awaitExit waits for the guest to end QEMU (a reboot or power-off under
// -no-reboot) within d, then frees the VM's slot.
func awaitExit(t testing.TB, vm *qemu.VM, d time.Duration, what string) {
	t.Helper()
	select {
	case <-vm.Exited():
	case <-time.After(d):
		t.Fatalf("%s: QEMU still running after %s; console tail:\n%s", what, d, qemu.Tail(vm.Console(), 2000))
	}
	vm.Stop()
}

// TestVerity (#15): the root slots prove themselves through dm-verity. A
// node's slot A is mapped and verified at boot; `keso upgrade` writes
// slot B with its tree and checks it; with v2 committed on B and v1 on A
// preferred again (keso rollback), one byte flipped in the middle of slot
// A's squashfs makes A's next boot stop in the initrd with a line naming
// the slot and the offset, before the root is mounted, and the initrd
// makes the boot loader prefer slot B: the node ends up running B, never
// the corrupt root.
func TestVerity(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	v1, v2 := upgradeReleases(t, "amd64")
	srv := serveReleases(t)
	n := newNode(t, "verity", v1)

	vm, _ := n.bootsUntil("v1", "a", 1)
	m, _, err := vm.Expect(verifiedRE, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	imageMiB, _ := strconv.ParseInt(m[2], 10, 64)
	t.Logf("BENCH verity: slot %s, %s MiB verified at boot in %s", m[1], m[2], m[4])
	c := n.ssh()
	info := run(t, c, "cat /run/keso/initrd.json")
	if !strings.Contains(info, `"root_device": "/dev/dm-0"`) || !strings.Contains(info, `"verity_root_hash": "`+m[3]) {
		t.Errorf("initrd.json does not record the verity mapping:\n%s", info)
	}
	if out := run(t, c, "cat /proc/mounts"); !regexp.MustCompile(`(?m)^/dev/dm-0 / squashfs`).MatchString(out) {
		t.Errorf("the root squashfs is not mounted from /dev/dm-0:\n%s", out)
	}

	// The upgrade writes slot B with its tree; the trial commits.
	out, code := guestRun(c, "keso upgrade --reboot --image "+srv.publish("v2", upgradeImage(t, v2)))
	t.Logf("keso upgrade: exit %d\n%s", code, out)
	if !strings.Contains(out, "dm-verity tree written and checked") || !strings.Contains(out, "as the release signed it") {
		t.Fatalf("keso upgrade: exit %d, want the slot's tree written and checked against the release's signed root hash", code)
	}
	c.Close()
	awaitExit(t, vm, 2*time.Minute, "keso upgrade --reboot")
	vm, _ = n.bootsUntil("v2", "b", 1)
	if _, _, err := vm.Expect(regexp.MustCompile(`keso-init: slot b: \d+ MiB verified by dm-verity`), time.Second); err != nil {
		t.Error(err)
	}
	if _, _, err := vm.Expect(regexp.MustCompile(`slot b is healthy: committed`), 3*time.Minute); err != nil {
		t.Fatalf("trial of slot b: %v", err)
	}

	// Back to v1 on slot A, B staying committed beside it.
	c = n.ssh()
	if out, code := guestRun(c, "keso rollback --reboot"); !strings.Contains(out, "slot a boots next") {
		t.Fatalf("keso rollback: exit %d: %s", code, out)
	}
	c.Close()
	awaitExit(t, vm, 2*time.Minute, "keso rollback --reboot")
	vm, _ = n.bootsUntil("rolled-back", "a", 1)
	c = n.ssh()
	guestRun(c, "keso poweroff")
	c.Close()
	awaitExit(t, vm, 2*time.Minute, "keso poweroff")

	// One byte of slot A's squashfs, in its middle, rots.
	mid := imageMiB << 19
	flipByte(t, n.disk, partOffset(t, n.disk, "KESO_ROOT_A")+mid)
	block := mid / 4096
	failRE := regexp.MustCompile(fmt.Sprintf(`slot a on /dev/vda2 fails its dm-verity check at byte %d \(block %d of \d+\): the slot is corrupt; not booting it \([^)]*\); slot b boots next`, block*4096, block))
	vm = n.start("a-corrupt")
	if m, _, err := vm.Expect(regexp.MustCompile(`command line: [^\n]*keso\.slot=([ab])`), 3*time.Minute); err != nil || m[1] != "a" {
		t.Fatalf("the boot after the flip: slot %v (%v), want a, still preferred", m, err)
	}
	if _, _, err := vm.Expect(failRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	awaitExit(t, vm, time.Minute, "the failed boot of slot a")
	if strings.Contains(vm.Console(), "switching root") {
		t.Errorf("the corrupt slot a was switched into; console tail:\n%s", qemu.Tail(vm.Console(), 2000))
	}
	vm, _ = n.bootsUntil("fell-back", "b", 1)
	c = n.ssh()
	defer c.Close()
	if st := n.status(c); st.Version != "2.0.0" || st.Slot != "b" {
		t.Errorf("after the corrupt slot a: status %+v, want 2.0.0 on b", st)
	}
}

// BenchmarkVerityBoot is the boot-time cost of dm-verity: the raw disk
// through UEFI, b.N boots; each reports the initrd's own measure of the
// read of the whole slot through the mapping (the cost: the mapping itself
// takes milliseconds) beside the whole boot to the k3s handoff. Run it
// with bench/verity.sh.
func BenchmarkVerityBoot(b *testing.B) {
	skipUnlessE2E(b)
	a := artifacts(b, "amd64")
	raw := a.file(b, "keso-amd64.img")
	fi, err := os.Stat(raw)
	if err != nil {
		b.Fatal(err)
	}
	var verify, handoffs []float64
	var mib float64
	for i := 0; i < b.N; i++ {
		disk := overlayDisk(b, raw, fi.Size()+1<<30)
		vm := qemu.Start(b, qemu.Config{LogDir: logDir(b), Name: fmt.Sprintf("bench-verity-%d", i), Arch: "amd64",
			Firmware: qemu.UEFI, Disks: []string{disk}, Boot: "c"})
		_, took := handoff(b, vm)
		m := verifiedRE.FindStringSubmatch(vm.Console())
		vm.Stop()
		if m == nil {
			b.Fatalf("boot %d: no dm-verity line on the console", i)
		}
		d, err := time.ParseDuration(m[4])
		if err != nil {
			b.Fatal(err)
		}
		mib, _ = strconv.ParseFloat(m[2], 64)
		verify, handoffs = append(verify, d.Seconds()), append(handoffs, took.Seconds())
	}
	b.ReportMetric(mib, "MiB-verified")
	b.ReportMetric(median(verify), "s-verity")
	b.ReportMetric(median(handoffs), "s-handoff")
	b.ReportMetric(100*median(verify)/median(handoffs), "pct-of-boot")
}
