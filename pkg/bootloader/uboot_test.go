package bootloader

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/keso-os/keso/test/e2e/qemu"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/tree"
)

func TestUBootEnvModel(t *testing.T) {
	env := UBootEnv{Good: SlotA}.Arm(SlotB, 3)
	var got []Slot
	for i := 0; i < 5; i++ {
		var s Slot
		s, env = env.Booting()
		got = append(got, s)
	}
	if want := []Slot{SlotB, SlotB, SlotB, SlotA, SlotA}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boots = %v, want %v", got, want)
	}
	env = UBootEnv{Good: SlotA}.Arm(SlotB, 3)
	_, env = env.Booting()
	env = env.Commit(SlotB)
	if s, _ := env.Booting(); s != SlotB {
		t.Errorf("after commit boots %s, want b", s)
	}
	parsed, err := ParseUBootEnv(append(UBootEnv{Good: SlotB, Try: SlotA, Left: 2}.Render(), 0, 'x'))
	if err != nil || parsed != (UBootEnv{Good: SlotB, Try: SlotA, Left: 2}) {
		t.Errorf("ParseUBootEnv(Render) = %+v, %v", parsed, err)
	}
	if _, err := ParseUBootEnv([]byte("keso_good=c\n")); err == nil {
		t.Errorf("ParseUBootEnv accepted slot c")
	}
}

// keso_left is read as hex (U-Boot's setexpr writes hex) and written as
// decimal (Render): only the one-digit counts the scripts keep are taken.
func TestParseUBootEnvTries(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"keso_left=3\n", 3, ""},
		{"keso_left=0x2\n", 2, ""},
		{"keso_left=9\n", 9, ""},
		{"keso_left=0000000A\n", 0, "want 0 to 9 tries"},
		{"keso_left=10\n", 0, "want 0 to 9 tries"},
		{"keso_left=-1\n", 0, "want 0 to 9 tries"},
		{"keso_left=x\n", 0, "is not a number"},
	} {
		got, err := ParseUBootEnv([]byte("keso_good=a\nkeso_try=b\n" + tc.in))
		switch {
		case tc.err == "" && (err != nil || got.Left != tc.want):
			t.Errorf("ParseUBootEnv(%q) = %+v, %v; want %d tries left", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseUBootEnv(%q) error = %v, want one containing %q", tc.in, err, tc.err)
		}
	}
}

func TestUImageScriptHeader(t *testing.T) {
	img := UImageScript("echo hi\n", 1700000000)
	if got := binary.BigEndian.Uint32(img[0:]); got != 0x27051956 {
		t.Fatalf("magic = %#x", got)
	}
	hdr := append([]byte(nil), img[:64]...)
	want := binary.BigEndian.Uint32(hdr[4:])
	binary.BigEndian.PutUint32(hdr[4:], 0)
	if crc32.ChecksumIEEE(hdr) != want {
		t.Errorf("header CRC does not verify")
	}
	if crc32.ChecksumIEEE(img[64:]) != binary.BigEndian.Uint32(img[24:]) {
		t.Errorf("data CRC does not verify")
	}
	if !bytes.HasSuffix(img, []byte("echo hi\n")) || img[30] != 6 {
		t.Errorf("payload or type wrong")
	}
}

// TestUBootScriptCountsTriesInQEMU runs the real boot script in Debian's
// U-Boot for QEMU's arm64 virt machine. The kernels on the disk are dummies,
// so every boot fails and the script resets, like a kernel that panics:
// the trial slot must be tried three times, then the good slot boots.
func TestUBootScriptCountsTriesInQEMU(t *testing.T) {
	const uboot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
	for _, need := range []string{uboot, "qemu-system-aarch64"} {
		if _, err := exec.LookPath(need); err != nil {
			if _, err2 := os.Stat(need); err2 != nil {
				t.Skipf("SKIPPED: %s not installed (apt-get install u-boot-qemu qemu-system-arm; scripts/deps.sh installs them)", need)
			}
		}
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "sd.img")
	script := UBootScript(UBootScriptSpec{Boot: "booti", Options: "console=ttyAMA0 panic=10"})
	writeBootDisk(t, disk, map[string][]byte{
		"boot.scr":       UImageScript(script, 0),
		"keso/boot.env":  UBootEnv{Good: SlotA}.Arm(SlotB, 3).Render(),
		"keso/a/vmlinuz": []byte("not a kernel a"),
		"keso/a/initrd":  []byte("initrd a"),
		"keso/b/vmlinuz": []byte("not a kernel b"),
		"keso/b/initrd":  []byte("initrd b"),
	})

	release := qemu.TakeSlot(t)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "256",
		"-accel", "tcg", "-nographic", "-bios", uboot, "-drive", "file="+disk+",if=virtio,format=raw")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	re := regexp.MustCompile(`keso: booting slot (\w) \(good (\w), trial (\w*), tries left (\w+)\)`)
	var boots []string
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for len(boots) < 5 && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			boots = append(boots, m[1]+":"+m[4])
		}
	}
	want := []string{"b:2", "b:1", "b:0", "a:0", "a:0"}
	if fmt.Sprint(boots) != fmt.Sprint(want) {
		t.Fatalf("boots (slot:tries left) = %v, want %v\nconsole:\n%s", boots, want, tail(log.String(), 3000))
	}
	cmd.Process.Kill()
	cmd.Wait()
	env, err := ParseUBootEnv(readFromFAT(t, disk, "/keso/boot.env"))
	if err != nil || env.Left != 0 || env.Try != SlotB || env.Good != SlotA {
		t.Errorf("boot.env after the trial = %+v, %v", env, err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

const partStart = esp.DiskPartStart

// writeBootDisk makes an MBR disk with one bootable FAT16 partition.
func writeBootDisk(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	tr := tree.Tree{}
	for p, data := range files {
		tr.Data(p, 0o644, data)
	}
	if err := esp.WriteDisk(path, 64<<20, 0x0e, "KESOBOOT", tr, 0); err != nil {
		t.Fatal(err)
	}
}

func readFromFAT(t *testing.T, disk, p string) []byte {
	t.Helper()
	b, err := esp.ReadDiskFile(disk, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
