package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// Issue 5's tests in QEMU: install from the live ISO, an upgrade v1 → v2
// over SSH with the image served on the host's loopback, tampered images
// refused before anything is written, and the three rollbacks. Every guest
// reboot ends QEMU (-no-reboot); the node's disk is booted again, as a box
// comes back up, so the bootloader's try counting is the real one.

// TestInstallFromISO: the "USB stick that installs the store box" flow, on
// amd64 (OVMF, systemd-boot) and armv7 (AAVMF32, GRUB). The ISO is a disk
// (as dd'd to a stick), the config asks for a silent install to the blank
// disk and a power-off; then the installed disk boots alone, through the
// boot loader the arch's raw disk has (armv7: GRUB with its A/B counter).
func TestInstallFromISO(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	for _, arch := range []string{"amd64", "armv7"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			installFromISO(t, arch)
		})
	}
}

func installFromISO(t *testing.T, arch string) {
	v1, _ := upgradeReleases(t, arch)
	signer, pub := sshKey(t)
	port := freePort(t)
	cfg := fmt.Sprintf(`#cloud-config
hostname: store-42
ssh_authorized_keys:
  - %s
k3os:
  install:
    device: /dev/vdb
    silent: true
    power_off: true
keso:
  ssh:
    root_login: true
`, pub)
	target := blankDisk(t, 4<<30)
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "install-live-" + arch, Arch: arch, Firmware: qemu.UEFI, Boot: "c",
		Disks: []string{overlayDisk(t, v1.file(t, "keso-"+arch+".iso"), 0), target, seed(t, cfg, "instance-id: store-42\n")}})
	if _, _, err := vm.Expect(regexp.MustCompile(`installed to /dev/vdb`), 10*time.Minute); err != nil {
		t.Fatalf("silent install: %v", err)
	}
	select {
	case <-vm.Exited():
		t.Logf("the live system installed and powered off after %s", vm.Since().Round(time.Second))
	case <-time.After(2 * time.Minute):
		t.Fatalf("the VM did not power off after the install; console tail:\n%s", qemu.Tail(vm.Console(), 2000))
	}
	if !strings.Contains(vm.Console(), "power") {
		t.Errorf("no power-off line on the console")
	}
	vm.Stop()
	if arch == "armv7" {
		// The live system came up through the ISO's GRUB, and the install
		// wrote GRUB's A/B ESP: the core image, grub.cfg with the counter,
		// and grubenv with slot a good and no trial.
		checkEFIStub(t, vm, arch, true)
		for _, f := range []string{"EFI/BOOT/BOOTARM.EFI", "grub/grub.cfg", "keso/a/vmlinuz", "keso/a/initrd"} {
			espFile(t, target, f)
		}
		env, err := bootloader.ParseGrubEnv([]byte(espFile(t, target, "grub/grubenv")))
		if err != nil || env != (bootloader.UBootEnv{Good: bootloader.SlotA}) {
			t.Errorf("installed grub/grubenv = %+v, %v; want slot a good, no trial", env, err)
		}
	}

	// The installed disk alone, no seed: the config comes from KESO_STATE.
	n := &testNode{t: t, name: "installed-" + arch, arch: arch, disk: target, port: port, signer: signer}
	vm = n.start("disk")
	s, _ := handoff(t, vm)
	if arch == "armv7" {
		checkEFIStub(t, vm, arch, false)
	}
	checkCommon(t, s, v1, "disk")
	if s.Boot.Slot != "a" {
		t.Errorf("installed disk booted slot %q, want a", s.Boot.Slot)
	}
	if v := s.Mounts["/var"]; v.FSType != "ext4" {
		t.Errorf("/var is %+v, want ext4 on KESO_STATE", v)
	}
	c := n.ssh()
	defer c.Close()
	if got := strings.TrimSpace(run(t, c, "hostname")); got != "store-42" {
		t.Errorf("hostname = %q, want store-42 from the installed config", got)
	}
	st := n.status(c)
	if st.Mode != "disk" || st.Slot != "a" || st.Version != "1.0.0" {
		t.Errorf("status = mode %q slot %q version %q, want disk, a, 1.0.0", st.Mode, st.Slot, st.Version)
	}
	ls := run(t, c, "ls -l /keso/state/keso/config.yaml")
	if !strings.HasPrefix(ls, "-rw-------") {
		t.Errorf("saved config: %q, want mode 0600", ls)
	}
	if got := run(t, c, "cat /keso/state/keso/config.yaml"); !strings.Contains(got, "store-42") {
		t.Errorf("saved config does not hold the install's config:\n%s", got)
	}
}

// espFile reads p from the ESP (partition 1) of the GPT disk image disk
// with sgdisk and mtools, tools independent of keso's own code.
func espFile(t testing.TB, disk, p string) string {
	t.Helper()
	for _, tool := range []string{"sgdisk", "mtype"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not found (Debian gdisk / mtools; scripts/deps.sh installs them)", tool)
		}
	}
	info, err := exec.Command("sgdisk", "-i", "1", disk).CombinedOutput()
	m := regexp.MustCompile(`First sector: (\d+)`).FindSubmatch(info)
	if err != nil || m == nil {
		t.Fatalf("sgdisk -i 1 %s: %v\n%s", disk, err, info)
	}
	first, _ := strconv.ParseInt(string(m[1]), 10, 64)
	out, err := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", disk, first*512), "::"+p).Output()
	if err != nil {
		t.Fatalf("mtype ::%s on the ESP of %s: %v", p, disk, err)
	}
	return string(out)
}

// TestUpgradeV1ToV2 upgrades a node over SSH: tampered images first
// (refused, nothing written); v2 staged under --max-rate; then staged again
// from a delta over a wiped slot b on a dial-up link (56 kbit/s, cuts, a
// refusal, a power cut), fetching at most 1% of the image; then switched
// with --reboot; the trial boot of slot b commits once healthy. The
// releases have uncompressed roots (compression: none), what deltas need:
// v1 → v2 rebuilds keso and keso-init with another version and adds a
// 256 KiB file (deltaReleases).
func TestUpgradeV1ToV2(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	v1, v2 := deltaReleases(t, "amd64")
	srv := serveReleases(t)
	img := upgradeImage(t, v2)
	url := srv.publish("v2", img)

	n := newNode(t, "upgrade", v1)
	vm, _ := n.bootsUntil("v1", "a", 1)
	// A hang in a trial boot must count as a failed try: the agent arms
	// the watchdog (softdog: the cloud kernel has no i6300esb driver).
	if _, _, err := vm.Expect(regexp.MustCompile(`keso: watchdog: armed /dev/watchdog \(Software Watchdog, 1m0s\)`), time.Second); err != nil {
		t.Errorf("watchdog: %v", err)
	}
	c := n.ssh()
	st := n.status(c)
	if st.Version != "1.0.0" || st.Slot != "a" || st.Upgrade == nil || !st.Upgrade.Committed {
		t.Fatalf("before: status %+v / %+v, want 1.0.0 on a, committed", st, st.Upgrade)
	}

	// Tampering: one byte of the image (with the published digest, and with
	// a digest made to match), one byte of the signature.
	espBefore, slotBefore := partHash(t, c, "/dev/vda1", 64), partHash(t, c, "/dev/vda3", 64)
	dir := t.TempDir()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := os.ReadFile(img + ".sha256")
	sig, _ := os.ReadFile(img + ".sig")
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 0x01; return c }
	cases := []struct {
		name           string
		image, sum, sg []byte
		want           string
	}{
		{"image-byte", flip(data, len(data)/2), sum, sig, "sha256"},
		{"image-byte-matching-digest", flip(data, len(data)/2), nil, sig, "signature"},
		{"signature-byte", data, sum, flip(sig, len(sig)-5), "signature"},
	}
	for _, tc := range cases {
		d := filepath.Join(dir, tc.name)
		os.MkdirAll(d, 0o755)
		p := filepath.Join(d, filepath.Base(img))
		os.WriteFile(p, tc.image, 0o644)
		if tc.sum == nil {
			tc.sum = []byte(fmt.Sprintf("%s  %s\n", sha256Hex(tc.image), filepath.Base(img)))
		}
		os.WriteFile(p+".sha256", tc.sum, 0o644)
		os.WriteFile(p+".sig", tc.sg, 0o644)
		out, code := guestRun(c, "keso upgrade --image "+srv.publish(tc.name, p))
		t.Logf("tampered %s: exit %d: %s", tc.name, code, strings.TrimSpace(out))
		if code != 3 || !strings.Contains(out, "refused") || !strings.Contains(strings.ToLower(out), tc.want) {
			t.Errorf("tampered %s: exit %d, want 3 (refused, naming the %s):\n%s", tc.name, code, tc.want, out)
		}
	}
	if a, b := partHash(t, c, "/dev/vda1", 64), partHash(t, c, "/dev/vda3", 64); a != espBefore || b != slotBefore {
		t.Errorf("a refused upgrade changed the disk: ESP %v, slot b %v", a != espBefore, b != slotBefore)
	}

	// The real upgrade, staged by day and switched by night: --stage
	// fetches, verifies and writes slot b but arms nothing, held to 3 MiB/s
	// (--max-rate) on a link that gives it ~11 MiB/s: the server sees the
	// image leave at that rate, once
	// the buffers between it and keso (its socket's, QEMU's, the guest's)
	// have filled, that is from 8 MiB in.
	const maxRate = 3 << 20
	var mu sync.Mutex
	var steadyFrom, steadyTo int64
	var steadyStart, steadyEnd time.Time
	imgPath := strings.TrimPrefix(url, srv.GuestURL)
	srv.setHook(func(p string, pos, size int64) bool {
		if p == imgPath && pos >= 8<<20 {
			mu.Lock()
			if steadyStart.IsZero() {
				steadyFrom, steadyStart = pos, time.Now()
			}
			steadyTo, steadyEnd = pos, time.Now()
			mu.Unlock()
		}
		return false
	})
	start := time.Now()
	out, code := guestRun(c, fmt.Sprintf("keso upgrade --image %s --max-rate %dKi --stage", url, maxRate>>10))
	srv.setHook(nil)
	mu.Lock()
	if secs := steadyEnd.Sub(steadyStart).Seconds(); secs <= 0 {
		t.Errorf("the server saw no steady part of the image's download (%d to %d)", steadyFrom, steadyTo)
	} else if rate := float64(steadyTo-steadyFrom) / secs; rate > 1.15*maxRate {
		t.Errorf("keso upgrade --max-rate 3Mi: the server sent the image at %.2f MiB/s, want at most 3 MiB/s (+15%%)", rate/(1<<20))
	} else {
		t.Logf("keso upgrade --max-rate 3Mi: the server sent bytes %d–%d at %.2f MiB/s", steadyFrom, steadyTo, rate/(1<<20))
	}
	mu.Unlock()
	t.Logf("keso upgrade --stage (%s): exit %d\n%s", time.Since(start).Round(100*time.Millisecond), code, out)
	if code != 0 {
		t.Fatalf("keso upgrade --stage: exit %d", code)
	}
	if !strings.Contains(out, "1.0.0 → 2.0.0 staged on slot b") {
		t.Errorf("keso upgrade --stage did not report the staged slot:\n%s", out)
	}
	if m := regexp.MustCompile(`(\d+) bytes, (\d+) downloaded, fetch (\S+), verify (\S+), write (\S+), read back ([^\s,]+)(?:, dm-verity tree ([^\s,]+))?`).FindStringSubmatch(out); m != nil {
		t.Logf("BENCH upgrade amd64 (--max-rate 3Mi): image %s bytes, downloaded %s bytes, fetch %s, verify %s, write %s, read back %s, dm-verity tree %s", m[1], m[2], m[3], m[4], m[5], m[6], m[7])
	}
	// Staged, not armed: the ESP is as it was (the firmware boots v1).
	if a := partHash(t, c, "/dev/vda1", 64); a != espBefore {
		t.Errorf("keso upgrade --stage changed the ESP")
	}

	// Staged again, from a delta over a slot b wiped out, on a dial-up
	// link: the server sends the delta's data file at 56 kbit/s, cuts the
	// connection every sixth of it, refuses everything for 5 s once, and
	// the power fails halfway through. v1 boots again and the same
	// command continues where the download stopped, builds v2 from the
	// data and the running slot a, and it is this slot b that boots
	// tonight.
	staged := partHash(t, c, "/dev/vda3", 64)
	run(t, c, "dd if=/dev/zero of=/dev/vda3 bs=1048576 count=200 && sync")
	if b := partHash(t, c, "/dev/vda3", 64); b == staged {
		t.Fatalf("slot b still holds the staged image after dd")
	}
	deltaURL, dataPath, indexBytes, dataBytes := srv.publishDelta(t, "v2-delta", upgradeImage(t, v1), img, "1.0.0", "2.0.0")
	// v2 rebuilds keso with another version and adds a 256 KiB file: the
	// target for a change of files (issue 13: an overlay or config change,
	// at most 1% of the image) is the one it must meet.
	share := float64(indexBytes+dataBytes) / float64(len(data))
	t.Logf("the delta 1.0.0 -> 2.0.0: index %d + data %d bytes, %.2f%% of the %d-byte image; %s at 56 kbit/s, the image %s",
		indexBytes, dataBytes, 100*share, len(data), time.Duration(float64(indexBytes+dataBytes)*8/56000*float64(time.Second)).Round(time.Second),
		time.Duration(float64(len(data))*8/56000*float64(time.Second)).Round(time.Minute))
	if share > 0.01 {
		t.Errorf("the delta is %.2f%% of the image, want at most 1%% (another version, a new 256 KiB file)", 100*share)
	}
	const dialUp = 7000 // bytes a second: 56 kbit/s
	step := max(dataBytes/6, hookPiece)
	nextCut := step
	var refusedUntil time.Time
	refused, cuts := false, 0
	powerCut := make(chan struct{})
	srv.setHook(func(p string, pos, size int64) bool {
		if p != dataPath {
			return false
		}
		time.Sleep(hookPiece * time.Second / dialUp)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case powerCut != nil && pos >= size/2:
			close(powerCut)
			powerCut = nil
			return true
		case !refused && pos >= size/4:
			refused, refusedUntil = true, time.Now().Add(5*time.Second)
			return true
		case pos >= nextCut:
			nextCut, cuts = pos+step, cuts+1
			return true
		}
		return false
	})
	srv.setRefuse(func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		return p == dataPath && time.Now().Before(refusedUntil)
	})
	cutNow := powerCut
	first := make(chan string, 1)
	go func(c *ssh.Client) {
		o, code := guestRun(c, "keso upgrade --image "+deltaURL+" --stage")
		first <- fmt.Sprintf("exit %d: %s", code, o)
	}(c)
	select {
	case <-cutNow:
	case o := <-first:
		t.Fatalf("the delta stage ended before the power cut: %s", o)
	case <-time.After(5 * time.Minute):
		t.Fatal("the delta's download never got halfway")
	}
	c.Close()
	vm.Stop()
	vm, _ = n.bootsUntil("v1-staged", "a", 1)
	c = n.ssh()
	start = time.Now()
	out, code = guestRun(c, "keso upgrade --image "+deltaURL+" --stage")
	srv.setHook(nil)
	srv.setRefuse(nil)
	t.Logf("keso upgrade --stage from a delta after the power cut (%s): exit %d\n%s", time.Since(start).Round(100*time.Millisecond), code, out)
	if code != 0 || !strings.Contains(out, "built from a delta and the running slot") || !strings.Contains(out, "1.0.0 → 2.0.0 staged on slot b") {
		t.Fatalf("keso upgrade --stage from a delta: exit %d, want 2.0.0 staged on b, built from a delta", code)
	}
	if !strings.Contains(out, "resumed=true") {
		t.Errorf("the download after the power cut did not resume what arrived before it")
	}
	// Each byte of the data file went out once, but for what the power
	// cut took: what had arrived since the downloader's last fsync.
	ranges := srv.servedRanges(dataPath)
	slices.SortFunc(ranges, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var covered, twice, sent int64
	overlaps := 0
	for _, r := range ranges {
		sent += r[1] - r[0]
		if r[0] < covered {
			twice += min(r[1], covered) - r[0]
			overlaps++
		}
		covered = max(covered, r[1])
	}
	t.Logf("the data file (%d bytes) went out in %d responses (%d cuts, a 5 s refusal, a power cut): %d bytes sent, %d of them twice", dataBytes, len(ranges), cuts, sent, twice)
	// Sent twice: what arrived after the downloader's last fsync (at most
	// 5 s of the link, or the start of the attempt: a cut every step)
	// and what was on its way.
	if covered != dataBytes || overlaps > 1 || twice > min(step, 5*dialUp)+2*hookPiece {
		t.Errorf("served ranges %v: want [0, %d) covered, bytes sent twice only once (the power cut) and at most %d", ranges, dataBytes, min(step, 5*dialUp)+2*hookPiece)
	}
	// All the delta's files, each time they were fetched (the index and
	// its signature again after the power cut).
	base := strings.TrimSuffix(dataPath, ".data")
	all := srv.sent(base+".json") + srv.sent(base+".json.sig") + srv.sent(dataPath)
	t.Logf("bytes sent for the delta: %d (index and signature %d, data %d), %.2f%% of the image; %s at 56 kbit/s",
		all, all-srv.sent(dataPath), srv.sent(dataPath), 100*float64(all)/float64(len(data)), time.Duration(float64(all)*8/56000*float64(time.Second)).Round(time.Second))
	if total := float64(all) / float64(len(data)); total > 0.01 {
		t.Errorf("%d bytes sent for the delta (index, signature and data), %.2f%% of the image: want at most 1%%", all, 100*total)
	}
	if cuts < 3 {
		t.Errorf("only %d connection cuts: the link was not poor enough to test resuming", cuts)
	}
	if m := regexp.MustCompile(`(\d+) bytes, (\d+) downloaded`).FindStringSubmatch(out); m != nil {
		t.Logf("BENCH delta amd64 1.0.0 -> 2.0.0: image %s bytes, delta %d bytes (index %d + data %d, %.1f%% of the image)", m[1], indexBytes+dataBytes, indexBytes, dataBytes, 100*float64(indexBytes+dataBytes)/float64(len(data)))
	}
	if text := run(t, c, "keso status"); !strings.Contains(text, "keso 1.0.0, disk mode, slot A") || !strings.Contains(text, "staged:    2.0.0 on slot b") {
		t.Errorf("keso status after staging does not say 1.0.0 on A with 2.0.0 staged on b:\n%s", text)
	}
	out, code = guestRun(c, "keso upgrade --switch --reboot")
	t.Logf("keso upgrade --switch: exit %d\n%s", code, out)
	if code != 0 && code != -1 {
		t.Fatalf("keso upgrade --switch: exit %d", code)
	}
	if !strings.Contains(out, "1.0.0 → 2.0.0 armed on slot b (staged") {
		t.Errorf("keso upgrade --switch did not report the armed slot:\n%s", out)
	}
	c.Close()
	select {
	case <-vm.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatalf("no reboot after keso upgrade --reboot; console tail:\n%s", qemu.Tail(vm.Console(), 2000))
	}
	vm.Stop()

	vm, slots := n.bootsUntil("v2", "b", 1)
	if _, _, err := vm.Expect(regexp.MustCompile(`slot b is healthy: committed`), 3*time.Minute); err != nil {
		t.Fatalf("trial of slot b: %v", err)
	}
	c = n.ssh()
	defer c.Close()
	st = n.status(c)
	if st.Version != "2.0.0" || st.Slot != "b" || st.Upgrade == nil || !st.Upgrade.Committed || st.Upgrade.Trial {
		t.Errorf("after: status %+v / %+v, want 2.0.0 on b, committed", st, st.Upgrade)
	}
	if got := osRelease(t, c); got != "2.0.0" {
		t.Errorf("/etc/os-release VERSION_ID = %q, want 2.0.0", got)
	}
	// The node annotated its own Node (as the kubelet, through the k3s
	// stand-in's API) once the trial committed: what the operator counts.
	waitAnnotated(t, c, map[string]string{"keso.io/version": "2.0.0", "keso.io/slot": "b", "keso.io/committed": "true"}, time.Minute)
	text := run(t, c, "keso status")
	t.Logf("keso status after the upgrade (boots %v):\n%s", slots, text)
	if !strings.Contains(text, "keso 2.0.0, disk mode, slot B") || !strings.Contains(text, "committed") {
		t.Errorf("keso status does not say v2, slot B, committed:\n%s", text)
	}
	vm.Stop()
}

// TestUpgradeRollback: three broken v2 releases. Each is tried its three
// times, then the bootloader boots v1 again, which records the rollback and
// its reason. No human action between the boots.
func TestUpgradeRollback(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	v1, _ := upgradeReleases(t, "amd64")
	cases := []struct {
		name    string
		variant Variant
		corrupt bool   // overwrite the start of slot b after the upgrade wrote it
		reason  string // in the recorded rollback
		tries   int    // keso upgrade --tries (0: the default, 3)
	}{
		// The kernel cannot start init: "Kernel panic - not syncing", then
		// panic=5 reboots.
		{"kernel-panic", Variant{Name: "v2-panic", Version: "2.0.0", Signed: true, Outputs: []string{"squashfs", "vmlinuz", "initrd"},
			Cmdline: "console=ttyS0,115200 panic=5 rdinit=/keso-no-such-init"}, false, "no trial boot reached the agent", 0},
		// The root on slot b is damaged after it was written (a failing
		// disk): the initrd cannot mount it and reboots.
		{"corrupt-root", Variant{Name: "v2", Version: "2.0.0", Signed: true, Outputs: []string{"squashfs", "vmlinuz", "initrd"}},
			true, "no trial boot reached the agent", 0},
		// k3s exits at once: the health gate gives each try up as soon as
		// k3s can no longer run health_stable (10 s) before the try's 30 s
		// end. Two tries (--tries 2) keep it short; the cases above show
		// the default three.
		{"k3s-exits", Variant{Name: "v2-k3s-exits", Version: "2.0.0", Signed: true, Outputs: []string{"squashfs", "vmlinuz", "initrd"},
			StandinExit: "1"}, false, "cannot be healthy within 30s: k3s must run 10s without exiting", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v2 := variant(t, "amd64", tc.variant)
			srv := serveReleases(t)
			url := srv.publish("v2", upgradeImage(t, v2))
			n := newNode(t, "rollback-"+tc.name, v1)
			vm, _ := n.bootsUntil("v1", "a", 1)
			c := n.ssh()
			cmd := "keso upgrade --image " + url
			if tc.tries > 0 {
				cmd += fmt.Sprintf(" --tries %d", tc.tries)
			}
			out, code := guestRun(c, cmd)
			if code != 0 {
				t.Fatalf("keso upgrade: exit %d\n%s", code, out)
			}
			if tc.corrupt {
				run(t, c, "dd if=/dev/zero of=/dev/vda3 bs=1M count=4 oflag=sync")
			}
			guestRun(c, "keso reboot") // the session ends with the guest
			c.Close()
			select {
			case <-vm.Exited():
			case <-time.After(2 * time.Minute):
				t.Fatalf("keso reboot did not reboot")
			}
			vm.Stop()

			vm, slots := n.bootsUntil("rollback", "a", 5)
			t.Logf("boots after the upgrade: %v", slots)
			want := "b,b,b,a"
			if tc.tries == 2 {
				want = "b,b,a"
			}
			if got := strings.Join(slots, ","); got != want {
				t.Errorf("slots booted = %s, want %s (three tries of the trial slot, then the old one)", got, want)
			}
			c = n.ssh()
			defer c.Close()
			st := n.status(c)
			if st.Version != "1.0.0" || st.Slot != "a" || st.Upgrade == nil || !st.Upgrade.Committed {
				t.Errorf("after the rollback: status %+v / %+v, want 1.0.0 on a, committed", st, st.Upgrade)
			}
			if r := st.Upgrade.LastRollback; r == nil || r.FromVersion != "2.0.0" || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("recorded rollback = %+v, want one from 2.0.0 whose reason says %q", r, tc.reason)
			} else {
				t.Logf("recorded rollback: %s → %s: %s", r.FromVersion, r.ToVersion, r.Reason)
			}
			if got := osRelease(t, c); got != "1.0.0" {
				t.Errorf("/etc/os-release VERSION_ID = %q, want 1.0.0", got)
			}
			vm.Stop()
		})
	}
}

// TestUpgradeArm runs the upgrade path on the arm disks: the arm64 raw disk
// under AAVMF (systemd-boot's counting), the armv7 raw disk under AAVMF32
// (GRUB's counter in grub/grubenv) and the arm64 Raspberry Pi card through
// Debian's U-Boot on QEMU's virt machine (the card's boot.scr and its
// counter in keso/boot.env). Each does v1 → v2 over SSH (committed on slot
// b), then a broken v3 on slot a that fails every try, after which v2 on
// slot b boots again with the rollback recorded. The raw disks' v3 panics
// the kernel through its own command line; the card's boot.scr keeps the
// card's command line, so its v3 is a k3s that exits (the health gate
// gives each try up) and is tried twice (--tries 2).
func TestUpgradeArm(t *testing.T) {
	skipUnlessE2E(t)
	squash := []string{"squashfs", "vmlinuz", "initrd"}
	panicV3 := Variant{Name: "v3-panic", Version: "3.0.0", Signed: true, Outputs: squash,
		Cmdline: "console=ttyAMA0,115200 panic=5 rdinit=/keso-no-such-init"}
	cases := []armUpgrade{
		{name: "arm64", arch: "arm64", node: newNode, v3: panicV3, tries: 3},
		{name: "armv7", arch: "armv7", node: newNode, v3: panicV3, tries: 3},
		{name: "arm64-pi-card", arch: "arm64", node: newCardNode, tries: 2,
			// the card's console on virt's PL011, which the Pi's
			// command line (ttyS1, tty1) does not name
			v1: &Variant{Name: "v1-card", Version: "1.0.0", Signed: true, Outputs: append(squash, "rpi"),
				RPiCmdline: "console=ttyAMA0,115200 panic=10"},
			v3: Variant{Name: "v3-k3s-exits", Version: "3.0.0", Signed: true, Outputs: squash, StandinExit: "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testUpgradeArm(t, tc)
		})
	}
}

// armUpgrade is one TestUpgradeArm machine.
type armUpgrade struct {
	name, arch string
	node       func(t testing.TB, name string, rel *Artifacts) *testNode
	v1         *Variant // the installed release; default upgradeReleases' v1
	v3         Variant  // a release whose every trial fails
	tries      int
}

func testUpgradeArm(t *testing.T, tc armUpgrade) {
	v1, v2 := upgradeReleases(t, tc.arch)
	if tc.v1 != nil {
		v1 = variant(t, tc.arch, *tc.v1)
	}
	v3 := variant(t, tc.arch, tc.v3)
	srv := serveReleases(t)
	n := tc.node(t, tc.name+"-upgrade", v1)
	vm, _ := n.bootsUntil("v1", "a", 1)
	c := n.ssh()
	out, code := guestRun(c, "keso upgrade --reboot --image "+srv.publish("v2", upgradeImage(t, v2)))
	t.Logf("keso upgrade to 2.0.0: exit %d\n%s", code, out)
	if !strings.Contains(out, "1.0.0 → 2.0.0 armed on slot b") {
		t.Fatalf("keso upgrade did not arm slot b")
	}
	if m := upgradeNumbersRE.FindStringSubmatch(out); m != nil {
		t.Logf("BENCH upgrade %s: image %s bytes, downloaded %s bytes, fetch %s, verify %s, write %s, read back %s, dm-verity tree %s", tc.name, m[1], m[2], m[3], m[4], m[5], m[6], m[7])
	}
	c.Close()
	<-vm.Exited()
	vm.Stop()

	vm, _ = n.bootsUntil("v2", "b", 1)
	if _, _, err := vm.Expect(regexp.MustCompile(`slot b is healthy: committed`), 3*time.Minute); err != nil {
		t.Fatalf("trial of slot b: %v", err)
	}
	c = n.ssh()
	if st := n.status(c); st.Version != "2.0.0" || st.Slot != "b" || st.Upgrade == nil || !st.Upgrade.Committed {
		t.Fatalf("after the upgrade: status %+v / %+v, want 2.0.0 on b, committed", st, st.Upgrade)
	}
	if got := osRelease(t, c); got != "2.0.0" {
		t.Errorf("/etc/os-release VERSION_ID = %q, want 2.0.0", got)
	}
	out, code = guestRun(c, fmt.Sprintf("keso upgrade --reboot --tries %d --image %s", tc.tries, srv.publish("v3", upgradeImage(t, v3))))
	if !strings.Contains(out, "2.0.0 → 3.0.0 armed on slot a") {
		t.Fatalf("keso upgrade to the broken 3.0.0: exit %d\n%s", code, out)
	}
	c.Close()
	<-vm.Exited()
	vm.Stop()

	vm, slots := n.bootsUntil("rollback", "b", tc.tries+2)
	if got, want := strings.Join(slots, ","), strings.Repeat("a,", tc.tries)+"b"; got != want {
		t.Errorf("slots booted = %s, want %s", got, want)
	}
	c = n.ssh()
	defer c.Close()
	st := n.status(c)
	if st.Version != "2.0.0" || st.Slot != "b" || st.Upgrade == nil || st.Upgrade.LastRollback == nil || st.Upgrade.LastRollback.FromVersion != "3.0.0" {
		t.Errorf("after the rollback: status %+v / %+v, want 2.0.0 on b with a rollback from 3.0.0", st, st.Upgrade)
	} else {
		t.Logf("recorded rollback: %s", st.Upgrade.LastRollback.Reason)
	}
	vm.Stop()
}

// standinNode is what the k3s stand-in's Node went through
// (test/k3s-standin NodeRecord, /run/k3s-standin-node.json).
type standinNode struct {
	Name        string            `json:"name"`
	Annotations map[string]string `json:"annotations"`
	Patches     []json.RawMessage `json:"patches"`
	Refused     []string          `json:"refused"`
}

// waitAnnotated waits until the stand-in's Node carries exactly the
// keso.io annotations in want (the agent annotates again right after a
// trial commits, on its own goroutine), and fails the test if it does not
// within timeout.
func waitAnnotated(t testing.TB, c *ssh.Client, want map[string]string, timeout time.Duration) standinNode {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(2 * time.Second) {
		out, code := guestRun(c, "cat /run/k3s-standin-node.json")
		var n standinNode
		if code == 0 && json.Unmarshal([]byte(out), &n) == nil && maps.Equal(n.Annotations, want) {
			if len(n.Refused) > 0 {
				t.Errorf("the stand-in refused requests: %v", n.Refused)
			}
			t.Logf("node %s annotated %v after %d patches", n.Name, n.Annotations, len(n.Patches))
			return n
		}
		if time.Now().After(deadline) {
			t.Errorf("the k3s stand-in's Node never carried %v within %s; last record (exit %d):\n%s", want, timeout, code, out)
			return n
		}
	}
}
