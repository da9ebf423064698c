package sdcard

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
)

func TestPlanPowerOfTwo(t *testing.T) {
	for _, tc := range []struct {
		l    Layout
		size int64
	}{
		{Layout{BootMiB: 256, RootMiB: 1024, StateMiB: 64}, 4 << 30},
		{Layout{BootMiB: 256, RootMiB: 512, StateMiB: 64}, 2 << 30},
		{Layout{BootMiB: 16, RootMiB: 8, StateMiB: 8}, 64 << 20},
	} {
		parts, size := Plan(tc.l)
		if size != tc.size {
			t.Errorf("%+v: size %d MiB, want %d MiB", tc.l, size>>20, tc.size>>20)
		}
		if len(parts) != 4 || parts[0].Start != 2048 || !parts[0].Bootable || parts[0].Type != 0x0e {
			t.Errorf("%+v: parts %+v, want boot FAT16 LBA at 1 MiB, active", tc.l, parts)
		}
		for i := 1; i < 4; i++ {
			if parts[i].Start != parts[i-1].Start+parts[i-1].Size {
				t.Errorf("%+v: partition %d starts at %d, want right after %d", tc.l, i+1, parts[i].Start, i)
			}
		}
		if end := parts[3].Offset() + parts[3].Bytes(); end > size {
			t.Errorf("%+v: partitions end at %d, past the image (%d)", tc.l, end, size)
		}
	}
}

func TestConfigTxt(t *testing.T) {
	got := ConfigTxt("arm64", map[string]string{"all": "x"})
	for _, want := range []string{"arm_64bit=1\n", "enable_uart=1\n", "upstream_kernel=1\n", "[all]\nkernel=u-boot.bin\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("arm64 config.txt lacks %q:\n%s", want, got)
		}
	}
	got = ConfigTxt("armv7", map[string]string{"pi2": "x", "pi3": "y"})
	if strings.Contains(got, "arm_64bit") {
		t.Errorf("armv7 config.txt switches to 64-bit:\n%s", got)
	}
	if want := "[pi2]\nkernel=u-boot-pi2.bin\n[pi3]\nkernel=u-boot-pi3.bin\n[all]\n"; !strings.HasSuffix(got, want) {
		t.Errorf("armv7 config.txt ends\n%s\nwant the per-board U-Boot sections\n%s", got, want)
	}
}

func TestBootScript(t *testing.T) {
	src := BootScriptSource("arm64", "console=ttyS1,115200", 0xd4d16b13)
	for _, want := range []string{
		`setenv bootargs "console=ttyS1,115200 keso.mbr=d4d16b13 keso.slot=${keso_boot}"`,
		"booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}",
		"keso/boot.env",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("boot script lacks %q:\n%s", want, src)
		}
	}
	if !strings.Contains(BootScriptSource("armv7", "", 1), "bootz ${kernel_addr_r}") {
		t.Errorf("armv7 boot script does not use bootz")
	}
}

// fakeInputs writes small stand-ins for the firmware, U-Boot, DTBs, kernel
// and initrd, and a squashfs-sized file, and returns the BootSpec.
func fakeInputs(t *testing.T) (BootSpec, string) {
	dir := t.TempDir()
	w := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := BootSpec{Arch: "arm64", Firmware: map[string]string{}, UBoot: map[string]string{"all": w("u-boot.bin", "UBOOT")},
		DTBs: map[string]string{}, Kernel: w("vmlinuz", "KERNEL"), Initrd: w("initrd", "INITRD"),
		Cmdline: "console=ttyS1,115200 panic=10", DiskID: 0xd4d16b13, Epoch: 1700000000}
	for _, f := range []string{"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat"} {
		s.Firmware[f] = w(f, "FW "+f)
	}
	for _, d := range []string{"bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb"} {
		s.DTBs[d] = w(d, "DTB "+d)
	}
	sq := w("root.squashfs", "hsqs"+strings.Repeat("x", 4096))
	return s, sq
}

// TestWriteCard writes a small card and checks it with the tools a user
// has: sfdisk (util-linux), fsck.vfat (dosfstools), mtools.
func TestWriteCard(t *testing.T) {
	for _, tool := range []string{"mke2fs", "sfdisk", "fsck.vfat", "mtype"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not found (fdisk, dosfstools, mtools, e2fsprogs: run scripts/deps.sh)", tool)
		}
	}
	spec, sq := fakeInputs(t)
	boot, err := BootTree(spec)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "card.img")
	l := Layout{BootMiB: 32, RootMiB: 8, StateMiB: 8}
	if err := Write(context.Background(), img, Options{Seed: "test", Layout: l, Boot: boot, Squashfs: sq, Epoch: 1700000000, TmpDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img)
	if fi.Size() != 64<<20 {
		t.Errorf("image is %d bytes, want 64 MiB (a power of two)", fi.Size())
	}
	out, err := exec.Command("sfdisk", "-J", img).Output()
	if err != nil {
		t.Fatalf("sfdisk -J: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			Partitions []struct {
				Start, Size int64
				Type        string
				Bootable    bool
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatalf("sfdisk -J output: %v\n%s", err, out)
	}
	var got []string
	for _, p := range pt.PartitionTable.Partitions {
		got = append(got, fmt.Sprintf("%d+%d:%s:%v", p.Start, p.Size, p.Type, p.Bootable))
	}
	if g, want := pt.PartitionTable.Label+" "+pt.PartitionTable.ID+" "+strings.Join(got, " "),
		fmt.Sprintf("dos 0x%08x 2048+65536:e:true 67584+16384:83:false 83968+16384:83:false 100352+16384:83:false", DiskID("test")); g != want {
		t.Errorf("sfdisk sees %s\nwant        %s", g, want)
	}
	data, _ := os.ReadFile(img)
	if got := binary.LittleEndian.Uint32(data[440:]); got != DiskID("test") {
		t.Errorf("disk signature %08x, want %08x", got, DiskID("test"))
	}
	if !bytes.HasPrefix(data[67584*512:], []byte("hsqs")) {
		t.Errorf("root slot A does not start with the squashfs")
	}
	if !bytes.Equal(data[83968*512:83968*512+4096], make([]byte, 4096)) {
		t.Errorf("root slot B is not empty")
	}
	// ext4 magic 0xEF53 at 1024+56 of the state partition
	if m := binary.LittleEndian.Uint16(data[100352*512+1024+56:]); m != 0xef53 {
		t.Errorf("state partition: ext4 magic %#x, want 0xef53", m)
	}
	fat := filepath.Join(t.TempDir(), "boot.fat")
	if err := os.WriteFile(fat, data[2048*512:(2048+65536)*512], 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", fat).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	mtype := func(name string) string {
		out, err := exec.Command("mtype", "-i", img+"@@1M", "::"+name).CombinedOutput()
		if err != nil {
			t.Errorf("mtype %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	for name, want := range map[string]string{
		"bootcode.bin": "FW bootcode.bin", "start4.elf": "FW start4.elf", "u-boot.bin": "UBOOT",
		"bcm2837-rpi-3-b.dtb": "DTB bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb": "DTB bcm2711-rpi-4-b.dtb",
		"keso/a/vmlinuz": "KERNEL", "keso/a/initrd": "INITRD", "keso/b/vmlinuz": "KERNEL", "keso/b/initrd": "INITRD",
		"config.txt": ConfigTxt("arm64", spec.UBoot), "keso/boot.env": string(bootloader.UBootEnv{Good: bootloader.SlotA}.Render()),
	} {
		if got := mtype(name); got != want {
			t.Errorf("%s on the FAT = %q, want %q", name, got, want)
		}
	}
	scr := mtype("boot.scr")
	if want := string(bootloader.UImageScript(BootScriptSource("arm64", spec.Cmdline, spec.DiskID), spec.Epoch)); scr != want {
		t.Errorf("boot.scr is not the U-Boot image of the boot script")
	}
	out, _ = exec.Command("mdir", "-i", img+"@@1M", "::").CombinedOutput()
	if !strings.Contains(string(out), "KESO_BOOT") {
		t.Errorf("FAT volume label: mdir says\n%s\nwant KESO_BOOT", out)
	}
}

func TestBootTreeNeedsFirmware(t *testing.T) {
	spec, _ := fakeInputs(t)
	delete(spec.Firmware, "start.elf")
	if _, err := BootTree(spec); err == nil || !strings.Contains(err.Error(), "start.elf") {
		t.Errorf("BootTree without start.elf: %v, want an error naming it", err)
	}
}
