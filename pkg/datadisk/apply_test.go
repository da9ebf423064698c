package datadisk

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// testHost formats and probes for real (host.Linux on image files) and
// fakes mount and resize, which need a kernel: it records mounts in the
// node's /proc/self/mountinfo so that a second run sees them.
type testHost struct {
	host.Linux
	root   string
	mounts []string
	blocks map[string]uint64 // mount point → file-system blocks
}

func (h *testHost) Mount(source, target, fstype string, flags uintptr, data string) error {
	rel := func(p string) string { return "/" + strings.TrimPrefix(strings.TrimPrefix(p, h.root), "/") }
	h.mounts = append(h.mounts, fmt.Sprintf("%s %s %s %#x %q", rel(source), rel(target), fstype, flags, data))
	f, err := os.OpenFile(filepath.Join(h.root, "proc/self/mountinfo"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%d 22 0:0 / %s rw - %s %s rw\n", 40+len(h.mounts), rel(target), fstype, rel(source))
	return err
}

func (h *testHost) GrowExt4(mountpoint string, deviceBytes int64) (uint64, uint64, error) {
	before := h.blocks[mountpoint]
	h.blocks[mountpoint] = uint64(deviceBytes) / 4096
	return before, h.blocks[mountpoint], nil
}

func newRoot(t *testing.T) (string, *testHost) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/self"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "proc/self/mountinfo"), []byte("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.MkdirAll(filepath.Join(root, "sys/class/block"), 0o755)
	return root, &testHost{root: root, blocks: map[string]uint64{}}
}

func image(t *testing.T, root, name string, size int64) string {
	t.Helper()
	p := filepath.Join(root, "dev", name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.MkdirAll(filepath.Join(root, "sys/class/block", name), 0o755)
	return p
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not installed (e2fsprogs/dosfstools; scripts/deps.sh installs them)", tool)
		}
	}
}

// fsck checks an image with e2fsprogs and returns dumpe2fs -h and the
// root directory listing from debugfs.
func fsck(t *testing.T, img string) (header, ls string) {
	t.Helper()
	if out, err := exec.Command("fsck.ext4", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.ext4 -fn %s: %v\n%s", img, err, out)
	}
	h, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	l, err := exec.Command("debugfs", "-R", "ls -l /", img).Output()
	if err != nil {
		t.Fatalf("debugfs: %v", err)
	}
	return string(h), string(l)
}

func TestApplyFormatsMountsGrowsOnce(t *testing.T) {
	need(t, "fsck.ext4", "dumpe2fs", "debugfs")
	root, h := newRoot(t)
	img := image(t, root, "vdb", 256<<20)
	fsys := host.FS{Root: root}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Disks: []cloudconfig.Disk{
		{Device: "/dev/vdb", Format: true, FSLabel: "keso-data", Mount: "/var/lib/data", Options: []string{"noatime"}, Grow: true},
	}}}
	var log bytes.Buffer
	rec := phase.NewRecorder("disks", &log, nil)
	Apply(cfg, fsys, h, rec)
	r := rec.Done()
	if !r.OK() {
		t.Fatalf("failures %+v", r.Failures)
	}
	var acts []string
	for _, c := range r.Changes {
		acts = append(acts, c.Action+" "+c.Target)
	}
	if got := strings.Join(acts, ", "); got != "format /dev/vdb, mount /var/lib/data, grow /var/lib/data" {
		t.Errorf("changes: %s\nlog:\n%s", got, log.String())
	}
	if want := `/dev/vdb /var/lib/data ext4 0x400 ""`; len(h.mounts) != 1 || h.mounts[0] != want {
		t.Errorf("mounts %q, want [%s]", h.mounts, want)
	}
	header, ls := fsck(t, img)
	for _, want := range []string{"Filesystem volume name:   keso-data", "Filesystem magic number:  0xEF53", "has_journal", "extent", "Filesystem state:         clean"} {
		if !strings.Contains(header, want) {
			t.Errorf("dumpe2fs -h lacks %q:\n%s", want, header)
		}
	}
	// go-diskfs makes no lost+found; the root directory must be readable.
	if !strings.Contains(ls, " ..") || !strings.Contains(ls, "40755") {
		t.Errorf("debugfs cannot list the root directory:\n%s", ls)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, blockdev.HeadSize)
	n, _ := f.ReadAt(head, 0)
	f.Close()
	if got := blockdev.Detect(head[:n]); got != (blockdev.Probe{Type: "ext4", Label: "keso-data"}) {
		t.Errorf("our own format detected as %+v", got)
	}

	// Second boot: the file system is there and mounted; nothing changes.
	rec = phase.NewRecorder("disks", nil, nil)
	Apply(cfg, fsys, h, rec)
	if r := rec.Done(); len(r.Changes) != 0 || !r.OK() {
		t.Errorf("second Apply: changes %+v failures %+v, want none", r.Changes, r.Failures)
	}
	// A reboot (nothing mounted) mounts again but does not format.
	os.WriteFile(filepath.Join(root, "proc/self/mountinfo"), []byte("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n"), 0o644)
	rec = phase.NewRecorder("disks", nil, nil)
	Apply(cfg, fsys, h, rec)
	if r := rec.Done(); len(r.Changes) != 1 || r.Changes[0].Action != "mount" {
		t.Errorf("after a reboot: changes %+v, want one mount", r.Changes)
	}
}

func sum(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestApplyNeverFormatsDataWithoutForce(t *testing.T) {
	need(t, "mkfs.vfat", "fsck.ext4", "dumpe2fs", "debugfs")
	root, h := newRoot(t)
	img := image(t, root, "vdc", 64<<20)
	if out, err := exec.Command("mkfs.vfat", "-F", "16", "-n", "PHOTOS", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	before := sum(t, img)
	fsys := host.FS{Root: root}
	disk := cloudconfig.Disk{Device: "/dev/vdc", Format: true, Mount: "/data"}
	rec := phase.NewRecorder("disks", nil, func(p string) string { return "user-data:12:5" })
	Apply(&cloudconfig.Config{Keso: cloudconfig.System{Disks: []cloudconfig.Disk{disk}}}, fsys, h, rec)
	r := rec.Done()
	if len(r.Failures) != 1 || r.Failures[0].Path != "keso.disks[0]" || r.Failures[0].Where != "user-data:12:5" ||
		!strings.Contains(r.Failures[0].Err, "already holds vfat") {
		t.Errorf("failures %+v, want one at keso.disks[0] saying it holds vfat", r.Failures)
	}
	if len(r.Changes) != 0 || len(h.mounts) != 0 {
		t.Errorf("changes %+v mounts %v, want none", r.Changes, h.mounts)
	}
	if sum(t, img) != before {
		t.Fatal("the vfat image was modified")
	}

	// With force it is formatted (and wiped), once.
	disk.Force, disk.FSLabel = true, "data"
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Disks: []cloudconfig.Disk{disk}}}
	rec = phase.NewRecorder("disks", nil, nil)
	Apply(cfg, fsys, h, rec)
	if r := rec.Done(); !r.OK() || len(r.Changes) != 2 || r.Changes[0].Action != "format" {
		t.Errorf("forced: changes %+v failures %+v", r.Changes, r.Failures)
	}
	header, _ := fsck(t, img)
	if !strings.Contains(header, "Filesystem volume name:   data") {
		t.Errorf("forced format: label missing:\n%s", header)
	}
	os.WriteFile(filepath.Join(root, "proc/self/mountinfo"), nil, 0o644) // reboot
	rec = phase.NewRecorder("disks", nil, nil)
	Apply(cfg, fsys, h, rec)
	if r := rec.Done(); len(r.Changes) != 1 || r.Changes[0].Action != "mount" {
		t.Errorf("forced disk after a reboot: changes %+v, want only a mount (no second format)", r.Changes)
	}
}

func TestApplyByLabelAndMissingDevice(t *testing.T) {
	need(t, "mkfs.ext4")
	root, h := newRoot(t)
	img := image(t, root, "vdd", 32<<20)
	image(t, root, "vde", 32<<20) // empty, also probed
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "logs", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Disks: []cloudconfig.Disk{
		{Device: "/dev/nvme0n1", Format: true, Mount: "/a"},
		{Label: "logs", Mount: "/var/log/keep"},
	}}}
	rec := phase.NewRecorder("disks", nil, nil)
	Apply(cfg, host.FS{Root: root}, h, rec)
	r := rec.Done()
	if len(r.Failures) != 1 || r.Failures[0].Path != "keso.disks[0].device" || !strings.Contains(r.Failures[0].Err, "not found") {
		t.Errorf("failures %+v, want one at keso.disks[0].device", r.Failures)
	}
	if want := `/dev/vdd /var/log/keep ext4 0x0 ""`; len(h.mounts) != 1 || h.mounts[0] != want {
		t.Errorf("mounts %q, want [%s]", h.mounts, want)
	}
}
