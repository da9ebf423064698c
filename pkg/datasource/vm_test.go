package datasource

// TestQEMUDevices reads real seeds through a real kernel's block devices:
// a cloud-localds ISO on an IDE CD drive (/dev/sr0), an OpenStack config-2
// FAT volume on a virtio disk (/dev/vda) and a cloud-localds FAT seed on a
// second virtio disk (/dev/vdb), in a QEMU VM booted from Debian's cloud
// kernel. The test binary is the VM's /init: TestMain notices it is PID 1,
// mounts the API file systems, loads only the block drivers (no isofs, no
// vfat, no nls_*: volumes are read in user space), runs TestKernel* and
// powers off.

import (
	"bytes"
	"context"
	"fmt"
	harness "github.com/keso-os/keso/test/e2e/qemu"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/cpio"
	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/kmod"
	"golang.org/x/sys/unix"
)

// DeviceModules are the kernel modules the VM loads (with their
// dependencies) to see a CD on an IDE/ATA controller and virtio disks; the
// datasources need nothing else from the kernel.
var vmModules = []string{"ata_piix", "sr_mod", "virtio_pci", "virtio_blk"}

const vmMarker = "KESO-DATASOURCE-VM: exit "

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		os.Exit(vmInit(m))
	}
	os.Exit(m.Run())
}

func inVM() bool { return os.Getpid() == 1 }

func vmInit(m *testing.M) int {
	say := func(format string, args ...any) { fmt.Printf("vm-init: "+format+"\n", args...) }
	for _, mt := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := unix.Mount(mt.src, mt.dst, mt.typ, 0, ""); err != nil {
			say("mount %s: %v", mt.dst, err)
		}
	}
	order, _ := os.ReadFile("/modules/order")
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open("/modules/" + name + ".ko")
		if err != nil {
			say("module %s: %v", name, err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			say("load module %s: %v", name, err)
		}
		f.Close()
	}
	os.Args = []string{"/init", "-test.run=^TestKernel", "-test.v", "-test.count=1", "-test.timeout=3m"}
	code := m.Run()
	fmt.Printf("\n%s%d\n", vmMarker, code)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

// waitBlock waits for the kernel to finish probing the named devices.
func waitBlock(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for {
			sz, err := os.ReadFile("/sys/class/block/" + n + "/size")
			if err == nil && strings.TrimSpace(string(sz)) != "0" {
				break
			}
			if time.Now().After(deadline) {
				ents, _ := os.ReadDir("/sys/class/block")
				var have []string
				for _, e := range ents {
					have = append(have, e.Name())
				}
				t.Fatalf("block device %s did not appear within 30s (have %v)", n, have)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestKernelDevices runs inside the VM only.
func TestKernelDevices(t *testing.T) {
	if !inVM() {
		t.Skip("SKIP on the host: runs inside the VM of TestQEMUDevices")
	}
	waitBlock(t, "sr0", "vda", "vdb")
	files := host.FS{Root: "/"}

	// Default order: cdrom first, found on the IDE CD.
	start := time.Now()
	var log bytes.Buffer
	got := Collect(context.Background(), Inputs{Files: files, Cmdline: "console=ttyS0", Fetchers: NodeFetchers("/"), Log: &log})
	t.Logf("Collect (default order) took %s:\n%s", time.Since(start).Round(time.Microsecond), log.String())
	if len(got.Found) != 1 || got.Found[0].Origin != "cidata:/dev/sr0" || string(got.Found[0].UserData) != seedUserData {
		t.Fatalf("found %+v; want the cloud-localds ISO's user-data on /dev/sr0", got.Found)
	}
	res := cloudconfig.Load(got.Sources...)
	if !res.Valid() || res.Config.Hostname != "from-user-data" || got.Meta.InstanceID != "iid-store-0042" {
		t.Errorf("config: hostname %q instance-id %q diagnostics %v", res.Config.Hostname, got.Meta.InstanceID, res.Diagnostics)
	}

	// data_sources from the command line: the config drive on virtio.
	log.Reset()
	got = Collect(context.Background(), Inputs{Files: files, Cmdline: "keso.data_sources=configdrive,cdrom", Fetchers: NodeFetchers("/"), Log: &log})
	t.Logf("Collect (configdrive first):\n%s", log.String())
	if len(got.Found) != 1 || got.Found[0].Origin != "config-2:/dev/vda" || !strings.Contains(string(got.Found[0].UserData), "site: store-7") ||
		got.Meta.Hostname != "store-7" {
		t.Fatalf("found %+v; want the config drive on /dev/vda", got.Found)
	}

	// The FAT cidata seed on the second virtio disk, read directly.
	v, err := OpenVolume("/dev/vdb", "/dev/vdb")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ud, err := v.ReadFile("user-data")
	if err != nil || string(ud) != seedUserData || v.Label.FSType != blockdev.FSFAT12 {
		t.Errorf("/dev/vdb: %+v user-data %q, %v", v.Label, ud, err)
	}

	// Nothing was mounted, and no file system driver was needed.
	fsys, _ := os.ReadFile("/proc/filesystems")
	for _, name := range []string{"iso9660", "vfat"} {
		if strings.Contains(string(fsys), name) {
			t.Errorf("%s is registered in the kernel; the datasources should not need it", name)
		}
	}
}

func cacheDir() string {
	if d := os.Getenv("KESO_CACHE"); d != "" {
		return d
	}
	return "/var/cache/keso"
}

// cloudKernel unpacks Debian's newest cloud-amd64 kernel and its block
// drivers once into a cache folder outside the repo.
func cloudKernel(t *testing.T) (string, *kmod.Tree) {
	t.Helper()
	debs := os.Getenv("KESO_DEBS")
	if debs == "" {
		debs = filepath.Join(cacheDir(), "debs")
	}
	matches, _ := filepath.Glob(filepath.Join(debs, "linux-image-*-cloud-amd64_*_amd64.deb"))
	if len(matches) == 0 {
		t.Skipf("SKIPPED: no Debian cloud-amd64 kernel package in %s: run scripts/fetch-inputs.sh amd64 (or set KESO_DEBS)", debs)
	}
	sort.Slice(matches, func(i, j int) bool {
		_, vi, _, _ := deb.FileName(filepath.Base(matches[i]))
		_, vj, _, _ := deb.FileName(filepath.Base(matches[j]))
		return deb.CompareVersions(vi, vj) < 0
	})
	pkg := matches[len(matches)-1]
	dir := filepath.Join(cacheDir(), "test", "datasource-kernel", strings.TrimSuffix(filepath.Base(pkg), ".deb"))
	if _, err := os.Stat(filepath.Join(dir, ".done")); err != nil {
		tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
		os.RemoveAll(tmp)
		keep := func(name string) bool {
			if strings.HasPrefix(name, "boot/vmlinuz-") {
				return true
			}
			if !strings.HasPrefix(name, "lib/modules/") {
				return false
			}
			if strings.HasSuffix(name, "/modules.builtin") {
				return true
			}
			for _, d := range []string{"/kernel/drivers/ata/", "/kernel/drivers/scsi/", "/kernel/drivers/cdrom/",
				"/kernel/drivers/block/", "/kernel/drivers/virtio/", "/kernel/lib/", "/kernel/crypto/"} {
				if strings.Contains(name, d) {
					return true
				}
			}
			return false
		}
		if err := deb.Extract(pkg, tmp, keep); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(dir)
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	ks, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if len(ks) != 1 || len(mods) != 1 {
		t.Fatalf("unpacked kernel in %s: want one vmlinuz and one module tree, got %v %v", dir, ks, mods)
	}
	tree, err := kmod.Open(mods[0])
	if err != nil {
		t.Fatal(err)
	}
	return ks[0], tree
}

// makeSeeds writes the three volumes the VM reads.
func makeSeeds(t *testing.T, dir string) (cidataISO, configDrive, cidataFAT string) {
	needTool(t, "cloud-localds", "genisoimage", "mkfs.vfat", "mcopy")
	ud, md := filepath.Join(dir, "ud"), filepath.Join(dir, "md")
	writeFile(t, ud, seedUserData)
	writeFile(t, md, seedMetaData)
	cidataISO = filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", cidataISO, ud, md)
	cidataFAT = filepath.Join(dir, "seed.vfat")
	run(t, "cloud-localds", "-f", "vfat", cidataFAT, ud, md)

	tree := filepath.Join(dir, "config-2")
	meta, err := os.ReadFile("testdata/openstack/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "openstack/latest/meta_data.json"), string(meta))
	writeFile(t, filepath.Join(tree, "openstack/latest/user_data"), "#cloud-config\nkeso:\n  labels:\n    site: store-7\n")
	configDrive = filepath.Join(dir, "config-2.img")
	if err := os.WriteFile(configDrive, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(configDrive, 64<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.vfat", "-n", "CONFIG-2", configDrive)
	run(t, "mcopy", "-o", "-s", "-i", configDrive, filepath.Join(tree, "openstack"), "::")
	return cidataISO, configDrive, cidataFAT
}

func TestQEMUDevices(t *testing.T) {
	if inVM() {
		t.Skip("inside the VM")
	}
	if testing.Short() {
		t.Skip("SKIPPED: -short: boots a VM")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIPPED: qemu-system-x86_64 is not installed (Debian package qemu-system-x86, in scripts/deps.sh)")
	}
	work := t.TempDir()
	iso, drive, fat := makeSeeds(t, work)
	vmlinuz, tree := cloudKernel(t)
	set, err := tree.Resolve(vmModules)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s; modules %v", filepath.Base(vmlinuz), set.Order)

	start := time.Now()
	bin := filepath.Join(work, "init")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test binary for the VM: %v\n%s", err, out)
	}
	t.Logf("test binary built in %s", time.Since(start).Round(time.Millisecond))

	var initrd bytes.Buffer
	w := &cpio.Writer{W: &initrd}
	add := func(e cpio.Entry) {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "modules"} {
		add(cpio.Entry{Name: d, Mode: cpio.TypeDir | 0o755})
	}
	add(cpio.Entry{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMinor: 1})
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	add(cpio.Entry{Name: "init", Mode: cpio.TypeReg | 0o755, Data: data})
	for _, n := range set.Order {
		ko, err := os.ReadFile(filepath.Join(tree.Dir, tree.Path[n]))
		if err != nil {
			t.Fatal(err)
		}
		add(cpio.Entry{Name: "modules/" + n + ".ko", Mode: cpio.TypeReg | 0o644, Data: ko})
	}
	add(cpio.Entry{Name: "modules/order", Mode: cpio.TypeReg | 0o644, Data: []byte(strings.Join(set.Order, "\n") + "\n")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(work, "initrd.cpio")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	release := harness.TakeSlot(t)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", vmlinuz, "-initrd", initrdPath, "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
		"-drive", "file=" + iso + ",if=ide,index=1,media=cdrom,format=raw,readonly=on",
		"-drive", "file=" + drive + ",if=virtio,format=raw,readonly=on",
		"-drive", "file=" + fat + ",if=virtio,format=raw,readonly=on",
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	boot := time.Now()
	err = cmd.Run()
	console := out.String()
	t.Logf("VM ran %s; console:\n%s", time.Since(boot).Round(time.Millisecond), console)
	if err != nil {
		t.Fatalf("qemu: %v (ctx: %v)", err, ctx.Err())
	}
	if !strings.Contains(console, vmMarker+"0") {
		t.Fatalf("the VM's tests did not pass (no %q on the console)", vmMarker+"0")
	}
	if !regexp.MustCompile(`(?m)^--- PASS: TestKernelDevices \(`).MatchString(console) {
		t.Errorf("TestKernelDevices did not PASS inside the VM")
	}
}
