package datadisk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cpio"
	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// virtioModules are the cloud kernel's modules for virtio disks, in load
// order (NOTES.md); ext4 is built into the cloud kernel.
var virtioModules = []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk"}

func mkImage(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestQEMURealKernel runs the disks phase with the real host.Linux under a
// real kernel: it formats an empty virtio disk with go-diskfs, mounts it,
// finds a second disk by label and grows its ext4 online from 1 GiB to
// 4 GiB (4 KiB blocks, no resize_inode: the kernel converts to meta_bg),
// refuses to format a disk holding vfat, and changes nothing on the second
// run. The host then checks every image with fsck.ext4 and debugfs.
func TestQEMURealKernel(t *testing.T) {
	if testing.Short() || os.Getenv("KESO_E2E") == "0" {
		t.Skip("SKIP: QEMU test (-short or KESO_E2E=0)")
	}
	for _, tool := range []string{"fsck.ext4", "dumpe2fs", "debugfs", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not installed (e2fsprogs/dosfstools; scripts/deps.sh installs them)", tool)
		}
	}
	root := qemu.ModuleRoot(t)
	work := t.TempDir()

	// Kernel and modules from the Debian package.
	kdir := filepath.Join(work, "kernel")
	want := map[string]bool{}
	for _, m := range virtioModules {
		want[m+".ko"] = true
	}
	if err := deb.Extract(qemu.CloudKernelDeb(t, root), kdir, func(n string) bool {
		return strings.HasPrefix(n, "boot/vmlinuz-") || want[filepath.Base(n)]
	}); err != nil {
		t.Fatal(err)
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot/vmlinuz-*"))
	if len(vmlinuz) != 1 {
		t.Fatalf("kernel package has %d vmlinuz files", len(vmlinuz))
	}

	// The guest program as /init.
	guest := filepath.Join(work, "init")
	gb := exec.Command("go", "build", "-trimpath", "-o", guest, "./pkg/datadisk/testdata/guest")
	gb.Dir = root
	gb.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("build the guest: %v\n%s", err, out)
	}
	var initrd bytes.Buffer
	w := &cpio.Writer{W: &initrd}
	add := func(e cpio.Entry) {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "mnt", "lib", "lib/mod"} {
		add(cpio.Entry{Name: d, Mode: cpio.TypeDir | 0o755})
	}
	add(cpio.Entry{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMinor: 1})
	b, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	add(cpio.Entry{Name: "init", Mode: cpio.TypeReg | 0o755, Data: b})
	for i, m := range virtioModules {
		found, _ := filepath.Glob(filepath.Join(kdir, "lib/modules/*/kernel/drivers/*/"+m+".ko"))
		if len(found) != 1 {
			t.Fatalf("module %s: found %v", m, found)
		}
		b, err := os.ReadFile(found[0])
		if err != nil {
			t.Fatal(err)
		}
		add(cpio.Entry{Name: fmt.Sprintf("lib/mod/%02d-%s.ko", i, m), Mode: cpio.TypeReg | 0o644, Data: b})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(work, "initrd")
	os.WriteFile(initrdPath, initrd.Bytes(), 0o644)

	// The disks: empty; ext4 "grown" made by our own formatter at 1 GiB
	// then enlarged to 4 GiB; vfat with someone's data.
	vda, vdb, vdc := filepath.Join(work, "vda.img"), filepath.Join(work, "vdb.img"), filepath.Join(work, "vdc.img")
	mkImage(t, vda, 96<<20)
	mkImage(t, vdb, 1<<30)
	if err := (host.Linux{}).FormatExt4(vdb, "grown", false); err != nil {
		t.Fatal(err)
	}
	mkImage(t, vdc, 32<<20)
	run(t, "mkfs.vfat", "-F", "16", "-n", "PHOTOS", vdc)
	if err := os.Truncate(vdb, 4<<30); err != nil {
		t.Fatal(err)
	}
	vfatSum := fileSum(t, vdc)

	vm := qemu.Start(t, qemu.Config{
		Name: "datadisk", Arch: "amd64", Firmware: qemu.Direct, MemMiB: 512,
		Kernel: vmlinuz[0], Initrd: initrdPath, Append: "console=ttyS0 panic=-1 quiet",
		Disks: []string{vda, vdb, vdc},
	})
	if _, took, err := vm.Expect(regexp.MustCompile(`GUEST-DONE`), 4*time.Minute); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("guest finished %s after QEMU started", took.Round(100*time.Millisecond))
	}
	select {
	case <-vm.Exited():
	case <-time.After(30 * time.Second):
	}
	vm.Kill()
	console := vm.Console()
	if strings.Contains(console, "GUEST-ERROR") {
		t.Errorf("guest reported an error:\n%s", console)
	}
	reports := map[string]phase.Report{}
	for _, m := range regexp.MustCompile(`(RUN\d) (\{.*\})`).FindAllStringSubmatch(console, -1) {
		var r phase.Report
		if err := json.Unmarshal([]byte(m[2]), &r); err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		reports[m[1]] = r
	}
	first, second := reports["RUN1"], reports["RUN2"]
	var got []string
	for _, c := range first.Changes {
		got = append(got, c.Action+" "+c.Target)
	}
	if g := strings.Join(got, ", "); g != "format /dev/vda, mount /mnt/fresh, mount /mnt/grown, grow /mnt/grown" {
		t.Errorf("first run changes: %s\nconsole:\n%s", g, console)
	}
	for name, r := range map[string]phase.Report{"first": first, "second": second} {
		if len(r.Failures) != 1 || r.Failures[0].Path != "keso.disks[2]" || !strings.Contains(r.Failures[0].Err, "already holds vfat") {
			t.Errorf("%s run failures %+v, want the vfat refusal only", name, r.Failures)
		}
	}
	if len(second.Changes) != 0 {
		t.Errorf("second run changed %+v, want nothing", second.Changes)
	}

	// The host checks what the guest left.
	if fileSum(t, vdc) != vfatSum {
		t.Error("the vfat disk was modified")
	}
	for _, img := range []string{vda, vdb} {
		run(t, "fsck.ext4", "-fn", img)
		if out := run(t, "debugfs", "-R", "cat /hello", img); !strings.Contains(out, "written in the guest") {
			t.Errorf("%s: /hello not found:\n%s", filepath.Base(img), out)
		}
	}
	hdr := run(t, "dumpe2fs", "-h", vdb)
	if !strings.Contains(hdr, "Block count:              1048576") {
		t.Errorf("vdb was not grown to 4 GiB of 4 KiB blocks:\n%s", hdr)
	}
	if hdr := run(t, "dumpe2fs", "-h", vda); !strings.Contains(hdr, "Filesystem volume name:   fresh") {
		t.Errorf("vda label:\n%s", hdr)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
