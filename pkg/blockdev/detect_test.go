package blockdev

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// makeImage creates a file of size bytes and runs a real tool on it.
func makeImage(t *testing.T, size int64, tool string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("SKIP: %s not installed (scripts/deps.sh installs it)", tool)
	}
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	for i, a := range args {
		if a == "IMG" {
			args[i] = p
		}
	}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return readHead(t, p)
}

func readHead(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, HeadSize)
	n, _ := f.Read(b)
	return b[:n]
}

func TestDetectRealTools(t *testing.T) {
	for _, tc := range []struct {
		name string
		tool string
		args []string
		want Probe
	}{
		{"ext4", "mkfs.ext4", []string{"-q", "-F", "-L", "data", "IMG"}, Probe{"ext4", "data"}},
		{"ext3", "mkfs.ext4", []string{"-q", "-F", "-t", "ext3", "-L", "old", "IMG"}, Probe{"ext3", "old"}},
		{"ext2", "mkfs.ext4", []string{"-q", "-F", "-t", "ext2", "IMG"}, Probe{"ext2", ""}},
		{"fat16", "mkfs.vfat", []string{"-F", "16", "-n", "BOOT", "IMG"}, Probe{"vfat", "BOOT"}},
		{"fat32", "mkfs.vfat", []string{"-F", "32", "-n", "CIDATA", "IMG"}, Probe{"vfat", "CIDATA"}},
		{"fat-nolabel", "mkfs.vfat", []string{"-F", "16", "IMG"}, Probe{"vfat", ""}},
		{"swap", "mkswap", []string{"-L", "swp", "IMG"}, Probe{"swap", "swp"}},
		{"gpt", "sgdisk", []string{"-n", "1:2048:+1M", "IMG"}, Probe{"gpt", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Detect(makeImage(t, 64<<20, tc.tool, tc.args...))
			if got != tc.want {
				t.Errorf("Detect = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDetectISOAndSquashfs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("#cloud-config\n"), 0o644)
	iso := filepath.Join(t.TempDir(), "seed.iso")
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("SKIP: xorriso not installed (scripts/deps.sh installs it)")
	}
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-o", iso, dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	if got := Detect(readHead(t, iso)); got != (Probe{"iso9660", "cidata"}) {
		t.Errorf("iso: %+v", got)
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("SKIP: mksquashfs not installed (scripts/deps.sh installs it)")
	}
	sq := filepath.Join(t.TempDir(), "root.squashfs")
	if out, err := exec.Command("mksquashfs", dir, sq, "-quiet", "-noappend").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	if got := Detect(readHead(t, sq)); got.Type != "squashfs" {
		t.Errorf("squashfs: %+v", got)
	}
}

func TestDetectSynthetic(t *testing.T) {
	blank := func() []byte { return make([]byte, HeadSize) }
	with := func(off int, s string) []byte { b := blank(); copy(b[off:], s); return b }
	xfs := with(0, "XFSB")
	copy(xfs[108:], "xlabel")
	btrfs := with(65536+64, "_BHRfS_M")
	copy(btrfs[65536+0x12b:], "blabel")
	mbr := blank()
	mbr[510], mbr[511] = 0x55, 0xAA
	mbr[446+4] = 0x83
	mbrEmpty := blank()
	mbrEmpty[510], mbrEmpty[511] = 0x55, 0xAA
	junk := blank()
	junk[HeadSize-1] = 1
	for name, tc := range map[string]struct {
		head []byte
		want Probe
	}{
		"zeros":             {blank(), Probe{}},
		"short zeros":       {make([]byte, 100), Probe{}},
		"xfs":               {xfs, Probe{"xfs", "xlabel"}},
		"btrfs":             {btrfs, Probe{"btrfs", "blabel"}},
		"luks":              {with(0, "LUKS\xba\xbe"), Probe{"crypto_LUKS", ""}},
		"lvm":               {with(512, "LABELONE"), Probe{"LVM2_member", ""}},
		"gpt 4k sectors":    {with(4096, "EFI PART"), Probe{"gpt", ""}},
		"mbr":               {mbr, Probe{"mbr", ""}},
		"boot sector alone": {mbrEmpty, Probe{"unknown", ""}},
		"one byte of junk":  {junk, Probe{"unknown", ""}},
		"swap 64k pages":    {with(65536-10, "SWAPSPACE2"), Probe{"swap", ""}},
	} {
		if got := Detect(tc.head); got != tc.want {
			t.Errorf("%s: Detect = %+v, want %+v", name, got, tc.want)
		}
		if got := Detect(tc.head); got.Empty() != (tc.want.Type == "") {
			t.Errorf("%s: Empty = %v", name, got.Empty())
		}
	}
}
