package raw

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/image/esp"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: host tool %s not installed (scripts/deps.sh installs it); cannot check the image independently", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// extract copies a partition out of the image for tools that want a file.
func extract(t *testing.T, img string, p Part) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), p.Label)
	o, _ := os.Create(out)
	defer o.Close()
	if _, err := io.Copy(o, io.NewSectionReader(f, int64(p.Start)*sector, p.Bytes())); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteRawDisk(t *testing.T) {
	need(t, "mksquashfs", "unsquashfs", "sgdisk", "fsck.vfat", "fsck.ext4", "mke2fs", "mtype")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("NAME=keso\n"), 0o644)
	sq := filepath.Join(dir, "root.squashfs")
	run(t, "mksquashfs", root, sq, "-noappend", "-quiet", "-no-progress")
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, bytes.Repeat([]byte("K"), 3<<20+5), 0o644)
	loader := filepath.Join(dir, "loader.efi")
	os.WriteFile(loader, []byte("MZ fake loader"), 0o644)
	espTree, err := esp.Plan("amd64", loader, []esp.Entry{{File: "slot-a.conf", Title: "keso", Version: 1,
		Linux: "/keso/a/vmlinuz", Initrd: "/keso/a/initrd", Options: "keso.slot=a"}},
		map[string]string{"keso/a/vmlinuz": kernel, "keso/a/initrd": kernel})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	o := Options{Arch: "amd64", Seed: "test", Layout: Layout{EFIMiB: 64, RootMiB: 16, StateMiB: 32},
		ESP: espTree, Squashfs: sq, Epoch: 1700000000, TmpDir: dir}
	if err := Write(context.Background(), img, o); err != nil {
		t.Fatal(err)
	}
	v := run(t, "sgdisk", "-v", img)
	if !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v: %s", v)
	}
	pr := run(t, "sgdisk", "-p", img)
	for _, l := range []string{LabelEFI, LabelRootA, LabelRootB, LabelState} {
		if !strings.Contains(pr, l) {
			t.Errorf("sgdisk -p lacks %s:\n%s", l, pr)
		}
	}
	parts, _ := Plan("amd64", o.Layout)
	espFile := extract(t, img, parts[0])
	run(t, "fsck.vfat", "-n", espFile)
	if out := run(t, "mtype", "-i", espFile, "::loader/entries/slot-a.conf"); !strings.Contains(out, "options keso.slot=a") {
		t.Errorf("slot-a.conf = %q", out)
	}
	run(t, "unsquashfs", "-s", extract(t, img, parts[1]))
	run(t, "fsck.ext4", "-n", "-f", extract(t, img, parts[3]))

	// same inputs, same bytes
	img2 := filepath.Join(dir, "disk2.img")
	if err := Write(context.Background(), img2, o); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(img2)
	if !bytes.Equal(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("two writes with the same inputs differ, first at byte %d (sector %d): %q vs %q", i, i/512, a[i-40:i+40], b[i-40:i+40])
				break
			}
		}
	}
}
