package initrd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/kmod"
	"github.com/keso-os/keso/pkg/verity"
)

// fakeHost records side effects; "mounting" a squashfs on /sysroot copies
// in a tiny root so the stage's checks pass.
type fakeHost struct {
	root     string
	mounts   []string
	modules  []string
	loops    []string
	links    []host.Link
	failLoad map[string]bool
	switched string
	verity   []string
	unmounts []string
}

func (f *fakeHost) rel(p string) string {
	if !strings.HasPrefix(p, f.root) {
		return p
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, f.root), "/")
}

func (f *fakeHost) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	data = strings.ReplaceAll(data, f.root, "")
	f.mounts = append(f.mounts, fmt.Sprintf("%s %s %s %s", f.rel(source), f.rel(target), fstype, data))
	if fstype == "squashfs" {
		os.MkdirAll(filepath.Join(target, "sbin"), 0o755)
		os.Symlink("/usr/sbin/keso-init", filepath.Join(target, "sbin/init"))
	}
	return nil
}
func (f *fakeHost) Unmount(target string) error {
	f.unmounts = append(f.unmounts, f.rel(target))
	return nil
}
func (f *fakeHost) LoadModule(path, params string) error {
	if f.failLoad[kmod.ModuleName(path)] {
		return fmt.Errorf("load module %s: finit_module: exec format error", path)
	}
	f.modules = append(f.modules, kmod.ModuleName(path))
	return nil
}
func (f *fakeHost) AttachLoop(file string) (string, error) {
	f.loops = append(f.loops, f.rel(file))
	return "/dev/loop0", nil
}

// OpenVerity checks the slot in pure Go, as the kernel would block by
// block: the "mapped" /dev/dm-0 is a copy of the data up to the first
// corrupt block, so that reading it fails there.
func (f *fakeHost) OpenVerity(name, dataDev string, t *verity.Tree) (string, error) {
	f.verity = append(f.verity, name+" "+f.rel(dataDev))
	data, err := os.ReadFile(dataDev)
	if err != nil {
		return "", err
	}
	good := int64(t.DataBlocks) * int64(t.DataBlockSize)
	var ce *verity.CorruptionError
	if err := verity.Verify(bytes.NewReader(data), bytes.NewReader(data), t); errors.As(err, &ce) {
		good = ce.Offset
	} else if err != nil {
		return "", err
	}
	return "/dev/dm-0", os.WriteFile(filepath.Join(f.root, "dev/dm-0"), data[:good], 0o644)
}
func (f *fakeHost) BlockSize(path string) (int64, error) { return 256 << 20, nil }
func (f *fakeHost) GrowExt4(mp string, n int64) (uint64, uint64, error) {
	return 1000, uint64(n / 4096), nil
}
func (f *fakeHost) ResizePartition(disk string, partno int, start, length int64) error { return nil }

// PatchDevice writes the image file as the real one writes a device.
func (f *fakeHost) PatchDevice(path string, patches []host.Patch) error {
	return host.Linux{}.PatchDevice(path, patches)
}
func (f *fakeHost) Links() ([]host.Link, error) { return f.links, nil }
func (f *fakeHost) LinkUp(name string) error    { return nil }
func (f *fakeHost) DHCP(ctx context.Context, link string, timeout time.Duration) (*host.Lease, error) {
	return &host.Lease{Link: link, Address: "10.0.2.15/24", Router: "10.0.2.2"}, nil
}
func (f *fakeHost) SwitchRoot(newRoot, init string, argv, env []string) error {
	f.switched = f.rel(newRoot) + " " + init
	return fmt.Errorf("fake switch root")
}

// fakeSys writes sysfs uevent files and /dev nodes (plain files) under root.
func fakeSys(t *testing.T, root string, devs map[string]string, content map[string][]byte) {
	t.Helper()
	for name, uevent := range devs {
		d := filepath.Join(root, "sys/class/block", name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644)
		os.MkdirAll(filepath.Join(root, "dev"), 0o755)
		os.WriteFile(filepath.Join(root, "dev", name), content[name], 0o644)
	}
}

func newStage(t *testing.T) (*Stage, *fakeHost, *bytes.Buffer) {
	root := t.TempDir()
	fh := &fakeHost{root: root}
	var log bytes.Buffer
	now := time.Unix(0, 0)
	st := &Stage{Host: fh, Root: root, Log: &log, KernelRelease: "6.1.0-test",
		Now: func() time.Time { return now }, Sleep: func(d time.Duration) { now = now.Add(d) }}
	return st, fh, &log
}

func TestStageDiskMode(t *testing.T) {
	st, fh, log := newStage(t)
	fakeSys(t, st.Root, map[string]string{
		"sr0":  "DEVNAME=sr0\nDEVTYPE=disk\n",
		"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
		"vda1": "DEVNAME=vda1\nDEVTYPE=partition\nPARTNAME=KESO_EFI\n",
		"vda3": "DEVNAME=vda3\nDEVTYPE=partition\nPARTNAME=KESO_ROOT_B\n",
		"vda4": "DEVNAME=vda4\nDEVTYPE=partition\nPARTNAME=KESO_STATE\n",
	}, nil)
	os.MkdirAll(filepath.Join(st.Root, "lib/modules/6.1.0-test"), 0o755)
	os.WriteFile(filepath.Join(st.Root, "lib/modules/6.1.0-test/modules.dep"), []byte(depSample), 0o644)
	os.MkdirAll(filepath.Join(st.Root, "etc/keso"), 0o755)
	os.WriteFile(filepath.Join(st.Root, "etc/keso/initrd-modules"), []byte("virtio_blk\nsquashfs\next4\n"), 0o644)
	fh.failLoad = map[string]bool{"squashfs": true}

	plan := Plan{Mode: ModeDisk, Slot: "b", RootWait: 5 * time.Second}
	err := st.Run(context.Background(), "keso.slot=b", plan)
	if err == nil || err.Error() != "fake switch root" {
		t.Fatalf("Run = %v, want the fake switch root error", err)
	}
	if got, want := strings.Join(fh.modules, " "), "virtio_ring virtio virtio_blk"; got != want {
		t.Errorf("modules loaded = %q, want %q", got, want)
	}
	wantMounts := []string{
		"/dev/vda3 /sysroot squashfs ",
		"/dev/vda4 /sysroot/keso/state ext4 ",
		"tmpfs /sysroot/tmp tmpfs mode=1777",
		"/sysroot/keso/state/var /sysroot/var  ",
		"/sysroot/keso/state/home /sysroot/home  ",
		"/sysroot/keso/state/root /sysroot/root  ",
		"/sysroot/keso/state/opt /sysroot/opt  ",
		"overlay /sysroot/etc overlay lowerdir=/sysroot/etc,upperdir=/sysroot/keso/state/etc-overlay/upper,workdir=/sysroot/keso/state/etc-overlay/work",
	}
	if got, want := strings.Join(fh.mounts, "\n"), strings.Join(wantMounts, "\n"); got != want {
		t.Errorf("mounts\n got:\n%s\n want:\n%s", got, want)
	}
	if fh.switched != "/sysroot /sbin/init" {
		t.Errorf("switch root = %q", fh.switched)
	}
	var info Info
	b, err := os.ReadFile(filepath.Join(st.Root, InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &info)
	if info.Mode != ModeDisk || info.Slot != "b" || info.State != "/dev/vda4" && !strings.HasSuffix(info.State, "/dev/vda4") {
		t.Errorf("info = %+v", info)
	}
	if got := strings.Join(info.ModulesSkip, " "); got != "ext4 squashfs" {
		t.Errorf("skipped modules = %q, want %q", got, "ext4 squashfs")
	}
	if !strings.Contains(log.String(), "module squashfs: load module") {
		t.Errorf("log does not report the failed module:\n%s", log)
	}
}

// TestStageDiskModeVerity: with the slot's record in the initrd, the slot
// is mapped through dm-verity, read whole, and the mapping is mounted; a
// flipped byte fails the boot with the slot and the offset.
func TestStageDiskModeVerity(t *testing.T) {
	for _, flip := range []int64{-1, 3<<20 + 5} {
		st, fh, log := newStage(t)
		sq := filepath.Join(t.TempDir(), "root.squashfs")
		payload := bytes.Repeat([]byte("hsqs keso root "), 500000) // ~7.5 MB
		os.WriteFile(sq, payload, 0o644)
		slot := filepath.Join(t.TempDir(), "slot.img")
		rec, err := verity.SealFile(sq, slot, "b")
		if err != nil {
			t.Fatal(err)
		}
		img, _ := os.ReadFile(slot)
		if flip >= 0 {
			img[flip] ^= 1
		}
		fakeSys(t, st.Root, map[string]string{
			"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
			"vda3": "DEVNAME=vda3\nDEVTYPE=partition\nPARTNAME=KESO_ROOT_B\n",
			"vda4": "DEVNAME=vda4\nDEVTYPE=partition\nPARTNAME=KESO_STATE\n",
		}, map[string][]byte{"vda3": img})
		recJSON, _ := json.Marshal(rec)
		os.MkdirAll(filepath.Join(st.Root, "etc/keso"), 0o755)
		os.WriteFile(filepath.Join(st.Root, verity.RecordPath), recJSON, 0o644)
		var info Info
		err = st.FindRoot(context.Background(), Plan{Mode: ModeDisk, Slot: "b", RootWait: time.Second}, &info)
		if got, want := strings.Join(fh.verity, ","), "keso-root /dev/vda3"; got != want {
			t.Errorf("flip %d: dm-verity mappings %q, want %q", flip, got, want)
		}
		if flip < 0 {
			if err != nil {
				t.Fatalf("intact slot: %v\n%s", err, log)
			}
			if got, want := strings.Join(fh.mounts, "\n"), "/dev/dm-0 /sysroot squashfs "; got != want {
				t.Errorf("intact slot: mounts %q, want %q", got, want)
			}
			if info.Verity != rec.RootHash || info.RootDevice != "/dev/dm-0" || info.Root != "/dev/vda3" && !strings.HasSuffix(info.Root, "/dev/vda3") {
				t.Errorf("intact slot: info %+v", info)
			}
			if !strings.Contains(log.String(), "slot b: 7 MiB verified by dm-verity") {
				t.Errorf("intact slot: no verified line:\n%s", log)
			}
			continue
		}
		block := flip / 4096
		want := fmt.Sprintf("/dev/vda3 fails its dm-verity check at byte %d (block %d of %d): the slot is corrupt; not booting it", block*4096, block, rec.DataBlocks)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "slot b on ") {
			t.Errorf("flipped byte %d: err = %v, want %q", flip, err, want)
		}
		if len(fh.mounts) != 0 {
			t.Errorf("flipped byte: mounted %v", fh.mounts)
		}
	}
}

// TestVerityFallBack: a corrupt good slot makes the boot loader prefer the
// other slot when it has a committed entry; a corrupt slot on trial is
// left to the boot counter.
func TestVerityFallBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []string // systemd-boot entry files on the ESP
		want    string
		prefer  bool // slot a's entry must outrank b's afterwards
	}{
		{"good slot b, a committed", []string{"slot-a.conf", "slot-b.conf"}, "slot a boots next", true},
		{"slot b on trial", []string{"slot-a.conf", "slot-b+2-1.conf"}, "slot b is on trial: this is a failed try", false},
		{"no slot a", []string{"slot-b.conf"}, "slot a has nothing committed to boot", false},
	} {
		st, fh, _ := newStage(t)
		fakeSys(t, st.Root, map[string]string{
			"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
			"vda1": "DEVNAME=vda1\nDEVTYPE=partition\nPARTNAME=KESO_EFI\n",
		}, nil)
		esp := filepath.Join(st.Root, espMount, "loader/entries")
		os.MkdirAll(esp, 0o755)
		for i, e := range tc.entries {
			slot := bootloader.Slot(e[5:6])
			os.WriteFile(filepath.Join(esp, e), bootloader.Render(bootloader.EntrySpec{Slot: slot, Version: i + 1, Title: "keso " + e}), 0o644)
		}
		got := st.fallBack(Plan{Mode: ModeDisk, Slot: "b"}, "b")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: fallBack = %q, want %q", tc.name, got, tc.want)
		}
		if m := strings.Join(fh.mounts, ","); m != "/dev/vda1 /run/keso/esp vfat codepage=437,iocharset=iso8859-1" || strings.Join(fh.unmounts, ",") != "/run/keso/esp" {
			t.Errorf("%s: mounts %q, unmounts %v", tc.name, m, fh.unmounts)
		}
		entries, _ := bootloader.Entries(host.FS{Root: filepath.Join(st.Root, espMount)})
		version := map[bootloader.Slot]int{}
		for _, e := range entries {
			version[e.Slot] = e.Version
		}
		if preferred := version["a"] > version["b"]; preferred != tc.prefer {
			t.Errorf("%s: entries %+v: slot a preferred = %v, want %v", tc.name, entries, preferred, tc.prefer)
		}
	}
}

func TestStageVerityRecordProblems(t *testing.T) {
	for _, tc := range []struct{ name, record, want string }{
		{"empty slot", "{", "/dev/vda2 holds zeros, not a squashfs (an empty or overwritten slot?)"},
		{"garbage", "{", "slot a: the initrd's verity record:"},
		{"other slot", `{"slot":"b","image_size":4096,"root_hash":"` + strings.Repeat("00", 32) + `","salt":"","data_blocks":1,"hash_offset":4096}`,
			"slot a: the initrd carries slot b's dm-verity record"},
	} {
		st, fh, _ := newStage(t)
		fakeSys(t, st.Root, map[string]string{
			"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
			"vda2": "DEVNAME=vda2\nDEVTYPE=partition\nPARTNAME=KESO_ROOT_A\n",
		}, map[string][]byte{"vda2": map[bool][]byte{true: make([]byte, 4096), false: []byte("hsqs")}[tc.name == "empty slot"]})
		os.MkdirAll(filepath.Join(st.Root, "etc/keso"), 0o755)
		os.WriteFile(filepath.Join(st.Root, verity.RecordPath), []byte(tc.record), 0o644)
		err := st.FindRoot(context.Background(), Plan{Mode: ModeDisk, Slot: "a", RootWait: time.Second}, &Info{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if len(fh.mounts)+len(fh.verity) != 0 {
			t.Errorf("%s: mapped %v, mounted %v", tc.name, fh.verity, fh.mounts)
		}
	}
}

func TestStageRootNotFound(t *testing.T) {
	st, _, log := newStage(t)
	fakeSys(t, st.Root, map[string]string{
		"sr0":  "DEVNAME=sr0\nDEVTYPE=disk\n",
		"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
		"vda2": "DEVNAME=vda2\nDEVTYPE=partition\nPARTNAME=KESO_ROOT_B\n",
	}, nil)
	os.Remove(filepath.Join(st.Root, "dev/sr0")) // no medium: unreadable
	err := st.FindRoot(context.Background(), Plan{Mode: ModeAuto, RootWait: 3 * time.Second}, &Info{})
	want := `root not found after 3s: looked for GPT partition labelled KESO_ROOT_A or an ISO 9660 volume labelled KESO; found: sr0 (unreadable: no such file or directory), vda, vda2 (partlabel KESO_ROOT_B)`
	if err == nil || err.Error() != want {
		t.Errorf("error\n got  %v\n want %s", err, want)
	}
	if !strings.Contains(log.String(), "looking for") {
		t.Errorf("log: %s", log)
	}
}

func TestStageLiveMode(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso is not installed: run scripts/deps.sh")
	}
	st, fh, _ := newStage(t)
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "keso"), 0o755)
	os.WriteFile(filepath.Join(tree, "keso/root.squashfs"), []byte("sq"), 0o644)
	iso := filepath.Join(t.TempDir(), "x.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", "KESO", "-o", iso, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	other := filepath.Join(t.TempDir(), "o.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", "CIDATA", "-o", other, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	isoData, _ := os.ReadFile(iso)
	otherData, _ := os.ReadFile(other)
	if label, ok, err := ISOLabel(iso); err != nil || !ok || label != "KESO" {
		t.Fatalf("ISOLabel = %q %v %v, want KESO", label, ok, err)
	}
	fakeSys(t, st.Root, map[string]string{"sr0": "DEVNAME=sr0\n", "sr1": "DEVNAME=sr1\n", "vda": "DEVNAME=vda\n"},
		map[string][]byte{"sr0": otherData, "sr1": isoData})
	// The fake mount of the ISO does not show its files: put the squashfs where the mount would.
	os.MkdirAll(filepath.Join(st.Root, MediaDir, "keso"), 0o755)
	os.WriteFile(filepath.Join(st.Root, MediaDir, LiveSquashfs), []byte("sq"), 0o644)
	var info Info
	if err := st.FindRoot(context.Background(), Plan{Mode: ModeLive, RootWait: time.Second}, &info); err != nil {
		t.Fatal(err)
	}
	if info.Mode != ModeLive || !strings.HasSuffix(info.Root, "/dev/sr1:/keso/root.squashfs") || info.RootDevice != "/dev/loop0" {
		t.Errorf("info = %+v", info)
	}
	if got := strings.Join(fh.mounts, "\n"); got != "/dev/sr1 /run/keso/media iso9660 \n/dev/loop0 /sysroot squashfs " {
		t.Errorf("mounts:\n%s", got)
	}
}

func TestFetch(t *testing.T) {
	payload := bytes.Repeat([]byte("keso root "), 100000)
	sum := sha256.Sum256(payload)
	good := hex.EncodeToString(sum[:])
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch r.URL.Path {
		case "/flaky":
			// First answer: promise everything, send half and cut; then honour Range.
			if calls == 1 {
				w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
				w.Write(payload[:len(payload)/2])
				return
			}
			http.ServeContent(w, r, "r", time.Time{}, bytes.NewReader(payload))
		case "/ok":
			http.ServeContent(w, r, "r", time.Time{}, bytes.NewReader(payload))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tests := []struct {
		path, sha, wantErr string
		wantCalls          int
	}{
		{path: "/ok", sha: good, wantCalls: 1},
		{path: "/ok", sha: "", wantCalls: 1},
		{path: "/flaky", sha: good, wantCalls: 2},
		{path: "/ok", sha: strings.Repeat("0", 64), wantErr: "has sha256 " + good + ", but keso.root_sha256 wants 0000", wantCalls: 1},
		{path: "/missing", wantErr: "404 Not Found", wantCalls: 1},
	}
	for _, tt := range tests {
		st, _, log := newStage(t)
		calls = 0
		dst := filepath.Join(st.Root, "run/keso/rootfs.squashfs")
		err := st.Fetch(context.Background(), srv.URL+tt.path, dst, tt.sha)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want %q", tt.path, err, tt.wantErr)
			}
		} else if err != nil {
			t.Errorf("%s: %v\n%s", tt.path, err, log)
		} else if got, _ := os.ReadFile(dst); !bytes.Equal(got, payload) {
			t.Errorf("%s: downloaded %d bytes differ from the %d served", tt.path, len(got), len(payload))
		}
		if calls != tt.wantCalls {
			t.Errorf("%s: %d requests, want %d\n%s", tt.path, calls, tt.wantCalls, log)
		}
		if tt.path == "/flaky" && !strings.Contains(log.String(), "resuming at") {
			t.Errorf("flaky download did not resume:\n%s", log)
		}
	}
}

func TestNetbootNoCarrier(t *testing.T) {
	st, fh, _ := newStage(t)
	fh.links = []host.Link{{Name: "eth1"}, {Name: "eth0"}}
	err := st.FindRoot(context.Background(), Plan{Mode: ModeNetboot, URL: "http://x/r"}, &Info{})
	want := "netboot: looked for a network link with a carrier for 20s; found eth0, eth1, none with a carrier (cable?)"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got  %v\n want %s", err, want)
	}
}

func TestSniff(t *testing.T) {
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"sq":    {[]byte("hsqs\x01\x02"), "a squashfs"},
		"zero":  {make([]byte, 4096), "zeros"},
		"ext4":  {[]byte{0x53, 0xef, 1, 2}, "data starting 53ef0102"},
		"short": {[]byte{1}, "nothing readable (unexpected EOF)"},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, tt.data, 0o644)
		if got := sniff(p); got != tt.want {
			t.Errorf("sniff(%s) = %q, want %q", name, got, tt.want)
		}
	}
}

func TestNetbootHTTPSNeedsCABundle(t *testing.T) {
	st, fh, _ := newStage(t)
	fh.links = []host.Link{{Name: "eth0", Carrier: true}}
	err := st.FindRoot(context.Background(), Plan{Mode: ModeNetboot, URL: "https://example.org/r.squashfs"}, &Info{})
	if err == nil || !strings.Contains(err.Error(), "keso.root is https but the initrd has no CA bundle (/etc/ssl/certs/ca-certificates.crt)") {
		t.Errorf("error = %v, want the missing CA bundle named", err)
	}
}

// depSample is a slice of a real modules.dep (Debian 6.1 cloud-amd64).
const depSample = `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/squashfs/squashfs.ko:
`
