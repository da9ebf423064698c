package iso

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"

	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/tree"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: host tool %s not installed (scripts/deps.sh installs it); cannot check the ISO independently", tool)
		}
	}
}

const (
	isolinuxBin = "/usr/lib/ISOLINUX/isolinux.bin"
	isohdpfx    = "/usr/lib/ISOLINUX/isohdpfx.bin"
	ldlinux     = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func build(t *testing.T, dir, out string) {
	t.Helper()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, bytes.Repeat([]byte("K"), 1<<20+7), 0o644)
	sq := filepath.Join(dir, "root.squashfs")
	os.WriteFile(sq, bytes.Repeat([]byte("S"), 3<<20), 0o644)
	loader := filepath.Join(dir, "loader.efi")
	os.WriteFile(loader, []byte("MZ loader"), 0o644)
	et, err := esp.Plan("amd64", loader, []esp.Entry{{File: "live.conf", Title: "keso live", Version: 1,
		Linux: "/keso/live/vmlinuz", Initrd: "/keso/live/initrd", Options: "keso.live"}},
		map[string]string{"keso/live/vmlinuz": kernel, "keso/live/initrd": kernel})
	if err != nil {
		t.Fatal(err)
	}
	size, _ := esp.SizeFor(et)
	efiboot := filepath.Join(dir, "efiboot.img")
	os.Remove(efiboot)
	b, err := file.CreateFromPath(efiboot, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := esp.Write(b, 0, size, "KESO_EFI", et, 1700000000); err != nil {
		t.Fatal(err)
	}
	b.Close()
	files := tree.Tree{}
	files.Copy(PathSquashfs, 0o644, sq)
	files.Copy(PathKernel, 0o644, kernel)
	files.Copy(PathInitrd, 0o644, kernel)
	files.Copy(PathIsolinux, 0o644, isolinuxBin)
	files.Copy("isolinux/ldlinux.c32", 0o644, ldlinux)
	files.Data("isolinux/isolinux.cfg", 0o644, []byte("DEFAULT keso\n"))
	files.Copy(PathEFIBoot, 0o644, efiboot)
	err = Write(out, Options{Files: files, BIOS: true, UEFI: true, Isohdpfx: isohdpfx, EFIBootLen: size,
		Epoch: 1700000000, Seed: "test", TmpDir: dir})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHybridISO(t *testing.T) {
	need(t, "xorriso")
	for _, f := range []string{isolinuxBin, isohdpfx, ldlinux} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("SKIP: %s missing (packages isolinux, syslinux-common)", f)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "keso.iso")
	build(t, dir, out)
	rep := run(t, "xorriso", "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain")
	for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI", "Volume id    : 'KESO'",
		"System area summary: MBR isohybrid cyl-align-on GPT", "isohybrid-suitable",
		"MBR partition      :   2   0x00  0xef", "GPT partname local :   1  EFI boot partition", "GPT partition path :   1  /boot/efiboot.img"} {
		if !strings.Contains(rep, want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, rep)
		}
	}
	ls := run(t, "xorriso", "-indev", out, "-find", "/", "-type", "f")
	for _, want := range []string{"/keso/root.squashfs", "/boot/vmlinuz", "/boot/initrd", "/boot/efiboot.img", "/isolinux/isolinux.cfg"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ISO lacks %s:\n%s", want, ls)
		}
	}
	// (sgdisk refuses hybrid ISOs: their MBR entries overlap by design, so
	// xorriso's system-area report above is the independent GPT check.)
	if fi, _ := os.Stat(out); fi.Size()%(1<<20) != 0 {
		t.Errorf("ISO size %d is not a multiple of 1 MiB", fi.Size())
	}
	// extract efiboot.img through the MBR 0xEF entry and fsck it
	if _, err := exec.LookPath("fsck.vfat"); err == nil {
		img, _ := os.ReadFile(out)
		start := int(le32(img[0x1ce+8:])) * 512
		n := int(le32(img[0x1ce+12:])) * 512
		p := filepath.Join(dir, "esp-from-mbr.img")
		os.WriteFile(p, img[start:start+n], 0o644)
		run(t, "fsck.vfat", "-n", p)
	}
	out2 := filepath.Join(dir, "keso2.iso")
	build(t, dir, out2)
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("two builds differ first at byte %d (block %d)", i, i/2048)
			}
		}
		t.Fatalf("two builds differ in length: %d vs %d", len(a), len(b))
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
