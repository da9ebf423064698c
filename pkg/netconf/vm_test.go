package netconf

// TestQEMUKernel runs this package's real-kernel tests (TestKernel*) inside
// a QEMU VM booted from Debian's cloud kernel, for what the host's kernel
// cannot do (this machine's kernel has no bonding and no 8021q) and what
// must not be done on a shared host (stepping the clock). The test binary
// itself is the VM's /init: TestMain notices it is PID 1, mounts the API
// file systems, loads the modules, runs TestKernel* and powers off.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	harness "github.com/keso-os/keso/test/e2e/qemu"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cpio"
	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/kmod"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vmModules are the modules the VM loads (with their dependencies): the
// ones a keso image needs for bonds, VLANs and a virtio NIC, plus veth for
// the tests.
var vmModules = []string{"veth", "bonding", "8021q", "af_packet", "ipv6", "virtio_pci", "virtio_net"}

// vmMarker is printed by the VM's init with m.Run's exit code.
const vmMarker = "KESO-NETCONF-VM: exit "

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		os.Exit(vmInit(m))
	}
	os.Exit(m.Run())
}

func inVM() bool { return os.Getpid() == 1 }

// vmInit is PID 1 in the VM.
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
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	os.Args = []string{"/init", "-test.run=^TestKernel", "-test.v", "-test.count=1", "-test.timeout=5m"}
	code := m.Run()
	fmt.Printf("\n%s%d\n", vmMarker, code)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

// TestKernelClock steps the real clock with host.Linux.SetClock through
// pkg/ntp. Only inside the VM: it must not change the host's clock.
func TestKernelClock(t *testing.T) {
	if !inVM() {
		t.Skip("SKIP on the host: this test steps the system clock; it runs as part of TestQEMUKernel inside the VM")
	}
	testClock(t)
}

// TestKernelVirtio configures the VM's own virtio NIC: DHCP from QEMU's
// user network (10.0.2.15 from 10.0.2.2; with restrict=on slirp offers no
// router and no DNS) and SLAAC from its router advertisements (fec0::/64).
// Only inside the VM.
func TestKernelVirtio(t *testing.T) {
	if !inVM() {
		t.Skip("SKIP on the host: configures the machine's own NIC; it runs inside TestQEMUKernel's VM")
	}
	cfg := load(t, t.Name(), `hostname: vm
keso:
  dns_nameservers: [10.0.2.3]
  network:
    wait_online: 30s
    interfaces:
      - {name: "e*", dhcp: true, ipv6_ra: true}
`)
	nl := host.NewNetlink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := t.TempDir()
	var console strings.Builder
	rec := phase.NewRecorder("network", &console, nil)
	start := time.Now()
	res := Run(ctx, cfg, nl, nl, host.FS{Root: root}, rec)
	t.Logf("applied in %s:\n%s", time.Since(start).Round(time.Millisecond), console.String())
	diffLines(t, "failures", failures(rec.Done()), nil)
	if len(res.Leases) != 1 || res.Leases[0].Link != "eth0" || res.Leases[0].Address != "10.0.2.15/24" || res.Leases[0].Server != "10.0.2.2" || res.Leases[0].LeaseTime != 24*time.Hour {
		t.Fatalf("leases: %+v, want 10.0.2.15/24 for 24h from 10.0.2.2 on eth0", res.Leases)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	if err != nil || !strings.Contains(string(b), "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf: %q, %v", b, err)
	}
	// SLAAC: the kernel configures an address from QEMU's fec0::/64 prefix.
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, _ := netlink.LinkByName("eth0")
		as, _ := netlink.AddrList(l, netlink.FAMILY_V6)
		var got []string
		for _, a := range as {
			got = append(got, a.IPNet.String())
			if strings.HasPrefix(a.IPNet.String(), "fec0::") {
				t.Logf("SLAAC address %s after %s", a.IPNet, time.Since(start).Round(time.Millisecond))
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SLAAC address from fec0::/64 on eth0 within 15s (addresses: %v)", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func cacheDir() string {
	if d := os.Getenv("KESO_CACHE"); d != "" {
		return d
	}
	return "/var/cache/keso"
}

// cloudKernel finds Debian's newest cloud-amd64 kernel package among the
// builder's inputs and unpacks the kernel and the network modules once into
// a cache folder outside the repo.
func cloudKernel(t *testing.T) (vmlinuz string, tree *kmod.Tree) {
	t.Helper()
	debs := os.Getenv("KESO_DEBS")
	if debs == "" {
		debs = filepath.Join(cacheDir(), "debs")
	}
	matches, _ := filepath.Glob(filepath.Join(debs, "linux-image-*-cloud-amd64_*_amd64.deb"))
	if len(matches) == 0 {
		t.Skipf("SKIP: no Debian cloud-amd64 kernel package in %s: run scripts/fetch-inputs.sh amd64 (or set KESO_DEBS)", debs)
	}
	sort.Slice(matches, func(i, j int) bool {
		_, vi, _, _ := deb.FileName(filepath.Base(matches[i]))
		_, vj, _, _ := deb.FileName(filepath.Base(matches[j]))
		return deb.CompareVersions(vi, vj) < 0
	})
	pkg := matches[len(matches)-1]
	dir := filepath.Join(cacheDir(), "test", "netconf-kernel", strings.TrimSuffix(filepath.Base(pkg), ".deb")+"-v2")
	if _, err := os.Stat(filepath.Join(dir, ".done")); err != nil {
		tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
		os.RemoveAll(tmp)
		keep := func(name string) bool {
			return strings.HasPrefix(name, "boot/vmlinuz-") ||
				(strings.HasPrefix(name, "lib/modules/") && (strings.HasSuffix(name, "/modules.builtin") ||
					strings.Contains(name, "/kernel/net/") || strings.Contains(name, "/kernel/drivers/net/") ||
					strings.Contains(name, "/kernel/drivers/virtio/") ||
					strings.Contains(name, "/kernel/lib/") || strings.Contains(name, "/kernel/crypto/")))
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

func TestQEMUKernel(t *testing.T) {
	if inVM() {
		t.Skip("inside the VM")
	}
	if testing.Short() {
		t.Skip("SKIP: -short: boots a VM")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86, in scripts/deps.sh)")
	}
	vmlinuz, tree := cloudKernel(t)
	set, err := tree.Resolve(vmModules)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s; modules %v (built in: %v)", vmlinuz, set.Order, set.Builtin)

	work := t.TempDir()
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
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "var", "var/run", "modules", "etc"} {
		add(cpio.Entry{Name: d, Mode: cpio.TypeDir | 0o755})
	}
	add(cpio.Entry{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMinor: 1})
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	add(cpio.Entry{Name: "init", Mode: cpio.TypeReg | 0o755, Data: data})
	add(cpio.Entry{Name: "etc/hosts", Mode: cpio.TypeReg | 0o644, Data: []byte("127.0.0.1 localhost\n")})
	for _, n := range set.Order {
		ko, err := os.ReadFile(filepath.Join(tree.Dir, tree.Path[n]))
		if err != nil {
			t.Fatal(err)
		}
		add(cpio.Entry{Name: "modules/" + n + ".ko", Mode: cpio.TypeReg | 0o644, Data: ko})
	}
	// iproute2 from the host, with its libraries, for the `ip -d link`
	// cross-check inside the VM (an independent reader of the kernel state).
	if runtime.GOARCH == "amd64" {
		files, err := hostBinary("ip")
		if err != nil {
			t.Logf("NOTE: no `ip -d link` cross-check in the VM: %v", err)
		}
		dirs := map[string]bool{}
		for _, f := range files {
			for d := filepath.Dir(f); d != "/" && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
		var ds []string
		for d := range dirs {
			ds = append(ds, d)
		}
		sort.Strings(ds) // parents first
		for _, d := range ds {
			add(cpio.Entry{Name: strings.TrimPrefix(d, "/"), Mode: cpio.TypeDir | 0o755})
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			add(cpio.Entry{Name: strings.TrimPrefix(f, "/"), Mode: cpio.TypeReg | 0o755, Data: b})
		}
	}
	add(cpio.Entry{Name: "modules/order", Mode: cpio.TypeReg | 0o644, Data: []byte(strings.Join(set.Order, "\n") + "\n")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(work, "initrd.cpio")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	waitSlot := time.Now()
	release := harness.TakeSlot(t)
	defer release()
	t.Logf("waited %s for a QEMU slot", time.Since(waitSlot).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", vmlinuz, "-initrd", initrdPath,
		// One NIC on QEMU's user network with restrict=on: its DHCP server
		// and router advertisements work, nothing leaves the VM.
		"-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56", "-append", "console=ttyS0 panic=-1 quiet loglevel=3"}
	if runtime.GOARCH == "amd64" {
		args = append(args, "-cpu", "max")
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	boot := time.Now()
	err = cmd.Run()
	took := time.Since(boot)
	logPath := filepath.Join(work, "console.log")
	_ = os.WriteFile(logPath, out.Bytes(), 0o644)
	console := out.String()
	t.Logf("VM ran %s; console:\n%s", took.Round(time.Millisecond), indent(console))
	if err != nil {
		t.Fatalf("qemu: %v (ctx: %v)", err, ctx.Err())
	}
	if !strings.Contains(console, vmMarker+"0") {
		t.Fatalf("the VM's tests did not pass (no %q on the console)", vmMarker+"0")
	}
	// Every real-kernel test must have run, not skipped, inside the VM.
	for _, name := range []string{"TestKernelStatic", "TestKernelBondVLAN", "TestKernelDHCP", "TestKernelAutoDHCP", "TestKernelClock", "TestKernelVirtio"} {
		if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` \(`).MatchString(console) {
			t.Errorf("%s did not PASS inside the VM", name)
		}
	}
}

// hostBinary returns the path of a host tool and of every shared library
// it loads (from ldd).
func hostBinary(name string) ([]string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	files := []string{p}
	for _, l := range strings.Split(string(out), "\n") {
		fs := strings.Fields(l)
		switch {
		case len(fs) >= 3 && fs[1] == "=>" && strings.HasPrefix(fs[2], "/"):
			files = append(files, fs[2])
		case len(fs) >= 1 && strings.HasPrefix(fs[0], "/"):
			files = append(files, fs[0])
		}
	}
	return files, nil
}

func indent(s string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString("    " + sc.Text() + "\n")
	}
	return b.String()
}
