package grubefi

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/tree"
	"github.com/keso-os/keso/test/e2e/qemu"
)

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"core.efi", "vmlinuz", "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Plan("armv7", filepath.Join(dir, "core.efi"), SlotA{Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd"), Options: "console=ttyAMA0,115200 panic=10"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"EFI/BOOT/BOOTARM.EFI": "core.efi", "keso/a/vmlinuz": "vmlinuz", "keso/a/initrd": "initrd",
		"keso/a/cmdline.cfg": "set keso_options='console=ttyAMA0,115200 panic=10'\n",
	}
	for p, w := range want {
		n := tr[p]
		switch {
		case n == nil:
			t.Errorf("ESP lacks %s", p)
		case n.Source != "" && filepath.Base(n.Source) != w, n.Source == "" && string(n.Data) != w:
			t.Errorf("%s = %q / %q, want %q", p, n.Source, n.Data, w)
		}
	}
	env, err := bootloader.ParseGrubEnv(tr["grub/grubenv"].Data)
	if err != nil || env != (bootloader.UBootEnv{Good: bootloader.SlotA}) {
		t.Errorf("grubenv = %+v, %v; want slot a good, no trial", env, err)
	}
	if cfg := string(tr["grub/grub.cfg"].Data); !strings.Contains(cfg, "set keso_options='console=ttyAMA0,115200 panic=10'") {
		t.Errorf("grub.cfg's default command line is not the image's:\n%s", cfg)
	}
	if _, err := Plan("mips", "x", SlotA{}); err == nil {
		t.Errorf("Plan for an unknown arch: no error")
	}
}

func TestPlanLive(t *testing.T) {
	efi, medium, err := PlanLive("armv7", Live{CoreImage: "/w/grub-live.efi", Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd",
		Options: "keso.live console=ttyAMA0,115200"})
	if err != nil {
		t.Fatal(err)
	}
	files := func(tr tree.Tree) string {
		var got []string
		for p, n := range tr {
			if n.Kind != tree.Dir {
				got = append(got, p+" <- "+n.Source)
			}
		}
		sort.Strings(got)
		return strings.Join(got, "; ")
	}
	if got, want := files(efi), "EFI/BOOT/BOOTARM.EFI <- /w/grub-live.efi"; got != want {
		t.Errorf("EFI image = %s, want %s", got, want)
	}
	if got, want := files(medium), "grub/grub.cfg <- "; got != want {
		t.Errorf("medium files = %s, want %s", got, want)
	}
	cfg := string(medium["grub/grub.cfg"].Data)
	for _, want := range []string{"set keso_options='keso.live console=ttyAMA0,115200'", "linux /boot/vmlinuz ${keso_options}", "initrd /boot/initrd"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("live grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if _, _, err := PlanLive("mips", Live{}); err == nil {
		t.Errorf("PlanLive for an unknown arch: no error")
	}
}

func TestMkimageNamesWhatIsMissing(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	err := Mkimage(context.Background(), "armv7", t.TempDir(), filepath.Join(t.TempDir(), "x.efi"))
	if err == nil || !strings.Contains(err.Error(), "grub-efi-") {
		t.Errorf("Mkimage on an empty module folder: %v, want an error naming the package", err)
	}
}

// grubModules unpacks Debian's grub-efi-arm-bin from $KESO_DEBS (where
// scripts/fetch-inputs.sh armv7 puts it) and returns its arm-efi folder.
func grubModules(t *testing.T) string {
	t.Helper()
	debs := os.Getenv("KESO_DEBS")
	if debs == "" {
		debs = "/var/cache/keso/debs"
	}
	m, _ := filepath.Glob(filepath.Join(debs, "grub-efi-arm-bin_*_armhf.deb"))
	if len(m) == 0 {
		t.Skipf("SKIPPED: no grub-efi-arm-bin armhf package in %s: run scripts/fetch-inputs.sh armv7 (make test does)", debs)
	}
	dir := t.TempDir()
	if err := deb.Extract(m[len(m)-1], dir, func(n string) bool { return strings.HasPrefix(n, "usr/lib/grub/arm-efi/") }); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "usr/lib/grub/arm-efi")
}

// TestGrubCountsTriesInQEMU boots the real core image and grub.cfg under
// AAVMF32 (QEMU's armv7 virt machine) from an ESP with slot b on trial for
// three tries. The kernels are dummies, so every boot fails and grub.cfg
// restarts the machine, as after a kernel panic: slot b must be tried three
// times, each try counted in grubenv by GRUB's save_env before the kernel
// is loaded, then slot a boots.
func TestGrubCountsTriesInQEMU(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	cfg := qemu.Config{Arch: "armv7", Firmware: qemu.UEFI, Boot: "c"}
	if why := qemu.Available(cfg); why != "" {
		t.Skipf("SKIPPED: %s", why)
	}
	mods := grubModules(t)
	dir := t.TempDir()
	core := filepath.Join(dir, "BOOTARM.EFI")
	if err := Mkimage(context.Background(), "armv7", mods, core); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not a "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Plan("armv7", core, SlotA{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd"), Options: "console=ttyAMA0 slot-a-options"})
	if err != nil {
		t.Fatal(err)
	}
	// slot b armed as keso upgrade arms it: files, then the counter
	tr.Data("keso/b/vmlinuz", 0o644, []byte("not a kernel b"))
	tr.Data("keso/b/initrd", 0o644, []byte("not an initrd b"))
	tr.Data("keso/b/cmdline.cfg", 0o644, bootloader.GrubCmdline("console=ttyAMA0 slot-b-options"))
	tr.Data("grub/grubenv", 0o644, bootloader.UBootEnv{Good: bootloader.SlotA}.Arm(bootloader.SlotB, 3).RenderGrub())
	disk := filepath.Join(dir, "disk.img")
	if err := esp.WriteDisk(disk, 64<<20, 0xef, "KESO_EFI", tr, 0); err != nil {
		t.Fatal(err)
	}
	cfg.Disks = []string{disk}

	re := regexp.MustCompile(`keso: booting slot (\w) \(good (\w), trial (\w*), tries left (\w+)\)`)
	var boots []string
	for i := 0; i < 4; i++ {
		cfg.Name = fmt.Sprintf("grub-try-%d", i+1)
		vm := qemu.Start(t, cfg)
		m, took, err := vm.Expect(re, 3*time.Minute)
		if err != nil {
			t.Fatalf("boot %d: %v", i+1, err)
		}
		boots = append(boots, m[1]+":"+m[4])
		if _, _, err := vm.Expect(regexp.MustCompile(`keso: slot \w did not start; restarting`), time.Minute); err != nil {
			t.Fatalf("boot %d: grub.cfg did not give the failed slot up: %v", i+1, err)
		}
		select {
		case <-vm.Exited():
		case <-time.After(2 * time.Minute):
			t.Fatalf("boot %d: grub.cfg did not restart the machine", i+1)
		}
		t.Logf("boot %d: slot %s, tries left %s (GRUB's line %s after power-on)", i+1, m[1], m[4], took.Round(100*time.Millisecond))
		vm.Stop()
	}
	if got, want := strings.Join(boots, ","), "b:2,b:1,b:0,a:0"; got != want {
		t.Errorf("boots (slot:tries left) = %s, want %s", got, want)
	}
	env, err := bootloader.ParseGrubEnv(readFAT(t, disk, "/grub/grubenv"))
	if want := (bootloader.UBootEnv{Good: bootloader.SlotA, Try: bootloader.SlotB, Left: 0}); err != nil || env != want {
		t.Errorf("grubenv after the trial = %+v, %v; want %+v (the rollback the agent records)", env, err, want)
	}
}

func readFAT(t *testing.T, disk, p string) []byte {
	t.Helper()
	b, err := esp.ReadDiskFile(disk, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMkimageReproducible: the core image is a function of the module
// folder and the arguments (keso builds are reproducible).
func TestMkimageReproducible(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	mods := grubModules(t)
	t.Run("disk", func(t *testing.T) {
		mkimageTwice(t, func(out string) error { return Mkimage(context.Background(), "armv7", mods, out) }, "")
	})
	t.Run("live", func(t *testing.T) {
		mkimageTwice(t, func(out string) error { return MkimageLive(context.Background(), "armv7", mods, out, t.TempDir()) },
			LiveEarlyConfig)
	})
}

// mkimageTwice links a core image twice: each must be a PE image holding
// embed (the early config, if any), and the two must be byte-identical.
func mkimageTwice(t *testing.T, mk func(out string) error, embed string) {
	var sums []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "BOOTARM.EFI")
		if err := mk(out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 64<<10 || string(b[:2]) != "MZ" {
			t.Fatalf("core image is %d bytes starting %q, want a PE image", len(b), b[:2])
		}
		if embed != "" && !strings.Contains(string(b), embed) {
			t.Errorf("core image does not embed the early config %q", embed)
		}
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %s, %s", sums[0], sums[1])
	}
}
