package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// The arm boot paths through UEFI firmware: arm64 (AAVMF) and armv7
// (AAVMF32, virt with highmem=off) from the ISO as a virtio-scsi CD-ROM, the
// ISO as a disk (written to a USB stick with dd) and the raw disk. arm64
// goes firmware → systemd-boot (BOOTAA64.EFI) → the kernel's EFI stub →
// keso-init; armv7 goes firmware → GRUB (BOOTARM.EFI) → keso's grub.cfg →
// the kernel → keso-init. So the console must show the EFI stub or
// grub.cfg's line, and the stand-in's record must show the mode and slot
// that only the boot entry's options select.

// efiStubRE is printed by the arm kernels' EFI stub: the kernel was started
// by a UEFI loader, not by QEMU's -kernel.
var efiStubRE = regexp.MustCompile(`EFI stub: Booting Linux Kernel`)

// grubSlotARE is grub.cfg's line when it boots the good slot a (armv7:
// GRUB 2.06 starts a 32-bit kernel with its own loader, not the EFI stub).
var grubSlotARE = regexp.MustCompile(`keso: booting slot a \(good a, trial , tries left 0\)`)

// checkEFIStub asserts that the kernel came up through UEFI: through the
// kernel's EFI stub, or on armv7 through GRUB's grub.cfg (the live one on
// the ISO, the A/B one on a disk).
func checkEFIStub(t testing.TB, vm *qemu.VM, arch string, live bool) {
	t.Helper()
	if arch == "armv7" {
		re := grubSlotARE
		if live {
			re = regexp.MustCompile(regexp.QuoteMeta(bootloader.GrubLiveLine))
		}
		if !re.MatchString(vm.Console()) {
			t.Errorf("console shows no %q: the kernel was not started by keso's grub.cfg", re)
		}
		return
	}
	if !efiStubRE.MatchString(vm.Console()) {
		t.Errorf("console shows no %q: the kernel was not started through UEFI", efiStubRE)
	}
}

// bootArmISO boots keso-<arch>.iso through UEFI as a virtio-scsi CD-ROM,
// or asDisk as a virtio disk (the ISO written to a USB stick with dd).
func bootArmISO(t testing.TB, arch, name string, asDisk bool) (*Standin, time.Duration) {
	a := artifacts(t, arch)
	iso := a.file(t, "keso-"+arch+".iso")
	cfg := qemu.Config{LogDir: logDir(t), Name: name, Arch: arch, Firmware: qemu.UEFI, CDROM: iso}
	dev, what := "/dev/sr0", "virtio-scsi CD-ROM"
	if asDisk {
		cfg.CDROM, cfg.Disks = "", []string{overlayDisk(t, iso, 0)}
		dev, what = "/dev/vda", "ISO as a virtio disk"
	}
	vm := qemu.Start(t, cfg)
	s, took := handoff(t, vm)
	vm.Stop()
	checkEFIStub(t, vm, arch, true)
	checkCommon(t, s, a, "live")
	checkRAMVar(t, s)
	if !strings.HasPrefix(s.Boot.Root, dev) || !strings.HasSuffix(s.Boot.Root, ":/keso/root.squashfs") {
		t.Errorf("boot.json root = %q, want the squashfs on the %s (%s…:/keso/root.squashfs)", s.Boot.Root, what, dev)
	}
	if !strings.HasPrefix(s.Mounts["/"].Source, "/dev/loop") {
		t.Errorf("/ source = %q, want a loop device", s.Mounts["/"].Source)
	}
	return s, took
}

// bootArmRawDisk boots keso-<arch>.img through UEFI on a virtual disk 1 GiB
// larger than the image: disk mode, slot a, /var on KESO_STATE grown to the
// disk.
func bootArmRawDisk(t testing.TB, arch, name string) (*Standin, time.Duration) {
	a := artifacts(t, arch)
	raw := a.file(t, "keso-"+arch+".img")
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	const extra = 1 << 30
	disk := overlayDisk(t, raw, fi.Size()+extra)
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: name, Arch: arch, Firmware: qemu.UEFI, Disks: []string{disk}})
	s, took := handoff(t, vm)
	vm.Stop()
	checkEFIStub(t, vm, arch, false)
	checkCommon(t, s, a, "disk")
	checkStateDisk(t, s, "/dev/vda", extra)
	return s, took
}

// checkStateDisk asserts an installed-layout boot from dev: slot a's
// partition is the root, /var and /keso/state are the KESO_STATE ext4, and
// KESO_STATE grew into the extra bytes the virtual disk has beyond the image.
func checkStateDisk(t testing.TB, s *Standin, dev string, extra uint64) {
	t.Helper()
	if s.Boot.Slot != "a" {
		t.Errorf("boot.json slot = %q, want a", s.Boot.Slot)
	}
	checkVerityRoot(t, s, dev)
	v := s.Mounts["/var"]
	if v.FSType != "ext4" || v.Source != s.Boot.State || v.Root != "/var" || s.Boot.State == "" {
		t.Errorf("/var is %+v (state %q), want ext4 bind-mounted from /var on the KESO_STATE partition", v, s.Boot.State)
	}
	if st := s.Mounts["/keso/state"]; st.FSType != "ext4" || st.Source != s.Boot.State {
		t.Errorf("/keso/state is %+v, want the KESO_STATE ext4 %q", st, s.Boot.State)
	}
	if g := s.Boot.StateGrown; len(g) != 2 || g[1] <= g[0] {
		t.Errorf("state_grown_blocks = %v, want [before after] with after > before", g)
	}
	if min := extra * 7 / 8; s.Var == nil || s.Var.TotalBytes < min {
		t.Errorf("/var size = %+v, want > %d MiB after growing KESO_STATE into the extra %d MiB", s.Var, min>>20, extra>>20)
	}
}

// TestBootArm64ISO: the arm64 ISO as a virtio-scsi CD-ROM through AAVMF and
// systemd-boot reaches the k3s handoff in live mode.
func TestBootArm64ISO(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootArmISO(t, "arm64", "arm64-iso-uefi-cd", false)
}

// TestBootArmv7ISO: the armv7 ISO through AAVMF32 and GRUB (BOOTARM.EFI in
// its El Torito EFI image, the live grub.cfg) reaches the k3s handoff in
// live mode, as a virtio-scsi CD-ROM and as a disk (the hybrid image
// written to a USB stick with dd).
func TestBootArmv7ISO(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	for _, asDisk := range []bool{false, true} {
		name := map[bool]string{false: "cd", true: "disk"}[asDisk]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bootArmISO(t, "armv7", "armv7-iso-uefi-"+name, asDisk)
		})
	}
}

// TestBootArm64RawDisk: the arm64 raw disk through AAVMF reaches the handoff
// from slot a with /var on KESO_STATE.
func TestBootArm64RawDisk(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootArmRawDisk(t, "arm64", "arm64-raw-uefi")
}

// TestBootArmv7RawDisk: the armv7 raw disk through AAVMF32 (virt,
// highmem=off) and GRUB (grub-efi-arm-bin, keso's grub.cfg) reaches the
// handoff from slot a with /var on KESO_STATE.
func TestBootArmv7RawDisk(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootArmRawDisk(t, "armv7", "armv7-raw-uefi")
}

// TestISOReproducibleArmv7: two builds of the armv7 ISO from the same
// inputs and SOURCE_DATE_EPOCH are byte-identical, and each build's
// SHA256SUMS names the ISO with that digest.
func TestISOReproducibleArmv7(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	var sums []string
	for _, name := range []string{"repro-1", "repro-2"} {
		a := variant(t, "armv7", Variant{Name: name, Epoch: "1764892800", Outputs: []string{"squashfs", "vmlinuz", "initrd", "iso"}})
		iso := a.file(t, "keso-armv7.iso")
		out, err := exec.Command("sha256sum", iso).Output()
		if err != nil {
			t.Fatalf("sha256sum %s: %v", iso, err)
		}
		sum := strings.Fields(string(out))[0]
		list, err := os.ReadFile(filepath.Join(a.Dir, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(list), sum+"  keso-armv7.iso\n") {
			t.Errorf("%s: SHA256SUMS does not list keso-armv7.iso with %s:\n%s", name, sum, list)
		}
		sums = append(sums, sum)
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds of keso-armv7.iso differ: %s vs %s", sums[0], sums[1])
	}
}

// BenchmarkBootArm measures QEMU start to the k3s handoff for the arm UEFI
// boot paths and logs the artifact sizes per arch. bench/boot-arm.sh runs
// it and records the results in bench/RESULTS.md ("## arm").
func BenchmarkBootArm(b *testing.B) {
	skipUnlessE2E(b)
	paths := []struct {
		name string
		boot func(b *testing.B) time.Duration
	}{
		{"arm64-iso-uefi-cd", func(b *testing.B) time.Duration { _, d := bootArmISO(b, "arm64", "bench-arm64-iso", false); return d }},
		{"armv7-iso-uefi-cd", func(b *testing.B) time.Duration { _, d := bootArmISO(b, "armv7", "bench-armv7-iso", false); return d }},
		{"arm64-raw-uefi", func(b *testing.B) time.Duration { _, d := bootArmRawDisk(b, "arm64", "bench-arm64-raw"); return d }},
		{"armv7-raw-uefi", func(b *testing.B) time.Duration { _, d := bootArmRawDisk(b, "armv7", "bench-armv7-raw"); return d }},
	}
	for _, arch := range []string{"arm64", "armv7"} {
		logSizes(b, artifacts(b, arch)) // build outside the timed loops
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				ds = append(ds, p.boot(b))
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

// logSizes prints one "ARTIFACT-SIZE arch name apparent-bytes allocated-bytes"
// line per image artifact (bench/boot-arm.sh turns them into a table).
func logSizes(b *testing.B, a *Artifacts) {
	names := make([]string, 0, len(a.Files))
	for n := range a.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.Contains(n, "/") || strings.HasSuffix(n, ".sha256") || strings.HasSuffix(n, ".json") || n == "SHA256SUMS" {
			continue
		}
		size, alloc, err := fileSizes(a.Files[n])
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("ARTIFACT-SIZE %s %s %d %d", a.Arch, n, size, alloc)
	}
}

// fileSizes returns a file's apparent size and the bytes allocated on disk
// (raw images are sparse).
func fileSizes(p string) (size, alloc int64, err error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi.Size(), fi.Size(), nil
	}
	return fi.Size(), st.Blocks * 512, nil
}
