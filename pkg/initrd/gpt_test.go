package initrd

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// makeDisk writes a GPT disk image of sizeMiB with sgdisk, the way a raw
// keso image is laid out (ESP, two root slots, state last).
func makeDisk(t *testing.T, sizeMiB int) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("sgdisk (Debian gdisk) is not installed: run scripts/deps.sh")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-n1:2048:+4M", "-c1:KESO_EFI", "-t1:ef00", "-n2:0:+4M", "-c2:KESO_ROOT_A",
		"-n3:0:+4M", "-c3:KESO_ROOT_B", "-n4:0:0", "-c4:KESO_STATE", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	return img
}

func sgdiskPart(t *testing.T, img string, n string) string {
	t.Helper()
	out, err := exec.Command("sgdisk", "-i"+n, img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -i%s: %v\n%s", n, err, out)
	}
	return string(out)
}

func TestPlanGPTGrow(t *testing.T) {
	img := makeDisk(t, 16)
	if err := os.Truncate(img, 40<<20); err != nil { // dd'd onto a bigger disk
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	diskSectors := uint64(40<<20) / 512
	g, err := PlanGPTGrow(head, 512, diskSectors, "KESO_STATE")
	if err != nil {
		t.Fatal(err)
	}
	if g.Partition != 4 {
		t.Errorf("partition = %d, want 4", g.Partition)
	}
	// The new end is the last usable LBA: before 32 sectors of backup entries and the backup header.
	if want := diskSectors - 1 - 32 - 1; g.NewEnd != want {
		t.Errorf("new end LBA = %d, want %d", g.NewEnd, want)
	}
	if g.OldEnd >= g.NewEnd {
		t.Errorf("old end %d not below new end %d", g.OldEnd, g.NewEnd)
	}
	for _, w := range g.Writes {
		if _, err := f.WriteAt(w.Data, w.Offset); err != nil {
			t.Fatal(err)
		}
	}
	f.Sync()
	out, err := exec.Command("sgdisk", "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v after growth: %v\n%s", err, out)
	}
	info := sgdiskPart(t, img, "4")
	if !strings.Contains(info, "KESO_STATE") || !strings.Contains(info, "Last sector: "+strconv.FormatUint(g.NewEnd, 10)) {
		t.Errorf("sgdisk -i4 after growth does not show KESO_STATE ending at %d:\n%s", g.NewEnd, info)
	}
	// A second pass finds nothing to do.
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := PlanGPTGrow(head, 512, diskSectors, "KESO_STATE"); !errors.Is(err, ErrGPTNoGrow) {
		t.Errorf("second PlanGPTGrow error = %v, want ErrGPTNoGrow", err)
	}
}

func TestPlanGPTGrowRefusals(t *testing.T) {
	img := makeDisk(t, 16)
	head, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	big := uint64(64<<20) / 512
	if _, err := PlanGPTGrow(head, 512, big, "KESO_ROOT_B"); !errors.Is(err, ErrGPTNoGrow) || !strings.Contains(err.Error(), "not the last partition") {
		t.Errorf("growing a middle partition: error = %v, want not the last partition", err)
	}
	if _, err := PlanGPTGrow(head, 512, big, "NOPE"); err == nil || !strings.Contains(err.Error(), "no partition named NOPE") {
		t.Errorf("unknown label: error = %v", err)
	}
	bad := append([]byte(nil), head...)
	bad[512+60] ^= 0xff // inside the disk GUID: header CRC breaks
	if _, err := PlanGPTGrow(bad, 512, big, "KESO_STATE"); err == nil || !strings.Contains(err.Error(), "header CRC") {
		t.Errorf("corrupt header: error = %v, want a CRC error", err)
	}
	if _, err := PlanGPTGrow(make([]byte, 64*512), 512, big, "KESO_STATE"); err == nil || !strings.Contains(err.Error(), "no GPT header") {
		t.Errorf("no GPT: error = %v", err)
	}
}

// TestPlanGPTGrowCorruptEntry: an entry that lies past the disk, or ends
// before it starts, is refused rather than planned to end before it did
// (found by FuzzPlanGrow).
func TestPlanGPTGrowCorruptEntry(t *testing.T) {
	const image, disk = 16 << 20 / 512, 40 << 20 / 512
	root := gptPart{"KESO_ROOT_A", 2048, 4095}
	for _, tc := range []struct {
		name  string
		state gptPart
	}{
		{"past the disk", gptPart{StatePartLabel, 0x3030303030303030, 0x3030303030303030}},
		{"ends before it starts", gptPart{StatePartLabel, 8192, 4096}},
	} {
		head := gptSeed(image, root, tc.state)
		binary.LittleEndian.PutUint64(head[512+48:], 1<<62) // last usable LBA: past them all
		fixGPTCRCs(head)
		g, err := PlanGPTGrow(head, 512, disk, StatePartLabel)
		if err == nil || !strings.Contains(err.Error(), "want a partition that ends before it") {
			t.Errorf("%s: PlanGPTGrow = %s, %v; want a refusal", tc.name, planString(g), err)
		}
	}
}
