package install

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/raw"
)

func TestPlanRefusesSmallDisk(t *testing.T) {
	sq := int64(300 * mib)
	need := NeededBytes(sq)
	if got, want := need/mib, int64(1+256+2*1024+1024+1); got != want {
		t.Errorf("NeededBytes = %d MiB, want %d", got, want)
	}
	_, err := Plan("amd64", need-mib, sq)
	if err == nil || !strings.Contains(err.Error(), "needs at least 3330 MiB") {
		t.Errorf("Plan on a disk 1 MiB too small: %v", err)
	}
	l, err := Plan("amd64", 8<<30, sq)
	if err != nil {
		t.Fatal(err)
	}
	last := l.Parts[3]
	if got := int64(last.End+1)*512 + mib; got != 8<<30 {
		t.Errorf("state ends at %d, want the disk's end minus 1 MiB (%d)", got, int64(8<<30))
	}
	big, _ := Plan("amd64", 16<<30, 700*mib)
	if got, want := big.Parts[1].Bytes(), int64(1400*mib); got != want {
		t.Errorf("root slot for a 700 MiB image = %d, want %d", got, want)
	}
}

func need(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: %s not installed (scripts/deps.sh installs it)", tool)
		}
	}
}

func TestWriteOnAFileDisk(t *testing.T) {
	need(t, "sgdisk", "fsck.vfat", "mke2fs", "dumpe2fs")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	squash := bytes.Repeat([]byte("SQSH"), 1<<18) // 1 MiB stand-in image
	ext, err := raw.MakeExt4(t.Context(), dir, 16*mib, raw.LabelState, raw.GUID("t"), 0)
	if err != nil {
		t.Fatal(err)
	}
	in := Inputs{Arch: "amd64", Squashfs: write("root.squashfs", squash), Kernel: write("vmlinuz", []byte("kernel")),
		Initrd: write("initrd", []byte("initrd")), Loader: write("BOOTX64.EFI", []byte("MZ loader")), StateImage: ext,
		Options: "console=ttyS0 panic=10", Seed: "test"}
	diskPath := filepath.Join(dir, "disk.img")
	disk, err := os.Create(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 30
	if err := disk.Truncate(size); err != nil {
		t.Fatal(err)
	}
	l, err := Plan("amd64", size, int64(len(squash)))
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(disk, l, in); err != nil {
		t.Fatal(err)
	}
	disk.Close()

	out, err := exec.Command("sgdisk", "-v", diskPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, _ = exec.Command("sgdisk", "-p", diskPath).CombinedOutput()
	for _, label := range []string{"KESO_EFI", "KESO_ROOT_A", "KESO_ROOT_B", "KESO_STATE"} {
		if !strings.Contains(string(out), label) {
			t.Errorf("partition %s missing:\n%s", label, out)
		}
	}
	f, _ := os.Open(diskPath)
	defer f.Close()
	got := make([]byte, len(squash))
	f.ReadAt(got, int64(l.Parts[1].Start)*512)
	if !bytes.Equal(got, squash) {
		t.Errorf("KESO_ROOT_A does not hold the squashfs")
	}
	espPath := extract(t, f, l.Parts[0], filepath.Join(dir, "esp.img"))
	if out, err := exec.Command("fsck.vfat", "-n", espPath).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat: %v\n%s", err, out)
	}
	statePath := extract(t, f, raw.Part{Start: l.Parts[3].Start, End: l.Parts[3].Start + 16*mib/512 - 1}, filepath.Join(dir, "state.img"))
	if out, err := exec.Command("dumpe2fs", "-h", statePath).CombinedOutput(); err != nil || !strings.Contains(string(out), "KESO_STATE") {
		t.Errorf("state partition is not the ext4 image: %v\n%s", err, out)
	}

	state := host.FS{Root: filepath.Join(dir, "state-mnt")}
	if err := SaveConfig(state, []byte("hostname: a\n")); err != nil {
		t.Fatal(err)
	}
	fi, _ := state.Stat(ConfigPath)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v, want 0600", fi.Mode().Perm())
	}
}

func extract(t *testing.T, f *os.File, p raw.Part, dst string) string {
	t.Helper()
	buf := make([]byte, p.Bytes())
	if _, err := f.ReadAt(buf, int64(p.Start)*512); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestESPTree: an install writes the boot loader the running image
// carries: systemd-boot with slot A's entry, or on armv7 GRUB with
// grub.cfg, grubenv (slot a good) and slot A's command line.
func TestESPTree(t *testing.T) {
	for _, tc := range []struct {
		in         Inputs
		want, none []string
	}{
		{Inputs{Arch: "amd64", Loader: "/l.efi", Kernel: "/k", Initrd: "/i", Options: "console=ttyS0"},
			[]string{"EFI/BOOT/BOOTX64.EFI", "loader/loader.conf", "loader/entries/slot-a.conf", "keso/a/vmlinuz", "keso/a/initrd"},
			[]string{"grub/grub.cfg"}},
		{Inputs{Arch: "armv7", Grub: true, Loader: "/grub.efi", Kernel: "/k", Initrd: "/i", Options: "console=ttyAMA0"},
			[]string{"EFI/BOOT/BOOTARM.EFI", "grub/grub.cfg", "grub/grubenv", "keso/a/cmdline.cfg", "keso/a/vmlinuz", "keso/a/initrd"},
			[]string{"loader/entries/slot-a.conf"}},
	} {
		tr, err := espTree(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in.Arch, err)
		}
		for _, p := range tc.want {
			if tr[p] == nil {
				t.Errorf("%s (grub %v): ESP lacks %s", tc.in.Arch, tc.in.Grub, p)
			}
		}
		for _, p := range tc.none {
			if tr[p] != nil {
				t.Errorf("%s (grub %v): ESP has %s", tc.in.Arch, tc.in.Grub, p)
			}
		}
	}
}
