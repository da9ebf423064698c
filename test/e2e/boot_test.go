package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// bootTimeout bounds one boot to the handoff; generous because CI and
// other users share two cores and everything runs under TCG.
const bootTimeout = 4 * time.Minute

var standinRE = regexp.MustCompile(`KESO-K3S-STANDIN (\{.*\})\r?\n`)

// Standin is what test/k3s-standin prints.
type Standin struct {
	Argv       []string          `json:"argv"`
	Pid        int               `json:"pid"`
	Env        map[string]string `json:"env"`
	ConfigYAML *string           `json:"config_yaml"`
	NodeName   string            `json:"node_name"`
	Boot       struct {
		Mode       string   `json:"mode"`
		Slot       string   `json:"slot"`
		Version    string   `json:"version"`
		Root       string   `json:"root"`
		RootDevice string   `json:"root_device"`
		Verity     string   `json:"verity_root_hash"`
		State      string   `json:"state"`
		StateGrown []uint64 `json:"state_grown_blocks"`
		Lease      string   `json:"lease"`
	} `json:"boot_json"`
	Mounts map[string]struct {
		FSType  string `json:"fstype"`
		Source  string `json:"source"`
		Root    string `json:"root"`
		Options string `json:"options"`
	} `json:"mounts"`
	Var *struct {
		TotalBytes uint64 `json:"total_bytes"`
	} `json:"var_df"`
	OSRelease string   `json:"os_release"`
	Errors    []string `json:"errors"`
}

// logDir is where console logs are kept: KESO_E2E_LOGS, else the test's
// temporary folder (removed afterwards; a failure prints the console tail).
func logDir(t testing.TB) string {
	if d := os.Getenv("KESO_E2E_LOGS"); d != "" {
		os.MkdirAll(d, 0o755)
		return d
	}
	return t.TempDir()
}

func skipUnlessE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("KESO_E2E") == "0" {
		t.Skip("SKIP: KESO_E2E=0 turns the QEMU boot tests off")
	}
	if testing.Short() {
		t.Skip("SKIP: QEMU boot tests do not run with -short")
	}
}

// checkVerityRoot asserts a disk boot's root: the KESO_ROOT_A partition on
// dev, mounted through its dm-verity mapping /dev/dm-0 with a root hash.
func checkVerityRoot(t testing.TB, s *Standin, dev string) {
	t.Helper()
	if !strings.HasPrefix(s.Boot.Root, dev) || s.Boot.RootDevice != "/dev/dm-0" || s.Mounts["/"].Source != s.Boot.RootDevice || len(s.Boot.Verity) != 64 {
		t.Errorf("boot.json root %q, root device %q, verity %q, / source %q: want the KESO_ROOT_A partition on %s mounted through dm-verity (/dev/dm-0)",
			s.Boot.Root, s.Boot.RootDevice, s.Boot.Verity, s.Mounts["/"].Source, dev)
	}
}

// handoff waits for the stand-in's line and decodes it.
func handoff(t testing.TB, vm *qemu.VM) (*Standin, time.Duration) {
	t.Helper()
	m, took, err := vm.Expect(standinRE, bootTimeout)
	if err != nil {
		t.Fatalf("no k3s handoff: %v", err)
	}
	var s Standin
	if err := json.Unmarshal([]byte(m[1]), &s); err != nil {
		t.Fatalf("decode the stand-in's record %q: %v", m[1], err)
	}
	t.Logf("reached the k3s handoff in %s (QEMU start to stand-in line)", took.Round(100*time.Millisecond))
	return &s, took
}

// checkCommon asserts what every boot path shares.
func checkCommon(t testing.TB, s *Standin, a *Artifacts, mode string) {
	t.Helper()
	if got, want := strings.Join(s.Argv, " "), "/usr/local/bin/k3s server"; got != want {
		t.Errorf("k3s argv = %q, want %q", got, want)
	}
	if s.Pid <= 1 {
		t.Errorf("k3s pid = %d, want a child that keso-init supervises", s.Pid)
	}
	if s.Boot.Mode != mode {
		t.Errorf("boot.json mode = %q, want %q", s.Boot.Mode, mode)
	}
	if s.Env["KESO_BOOT_MODE"] != mode {
		t.Errorf("k3s env KESO_BOOT_MODE = %q, want %q", s.Env["KESO_BOOT_MODE"], mode)
	}
	if s.Boot.Version != a.Version {
		t.Errorf("boot.json version = %q, want the image version %q", s.Boot.Version, a.Version)
	}
	if root := s.Mounts["/"]; root.FSType != "squashfs" || !strings.Contains(root.Options, "ro") {
		t.Errorf("/ is %+v, want a read-only squashfs", root)
	}
	if etc := s.Mounts["/etc"]; etc.FSType != "overlay" {
		t.Errorf("/etc is %+v, want an overlay", etc)
	}
	if len(s.Errors) > 0 {
		t.Errorf("the stand-in reported errors: %v", s.Errors)
	}
}

// checkRAMVar asserts the live/netboot writable layers: /var on tmpfs.
func checkRAMVar(t testing.TB, s *Standin) {
	t.Helper()
	if v := s.Mounts["/var"]; v.FSType != "tmpfs" {
		t.Errorf("/var is %+v, want tmpfs (no state partition in this mode)", v)
	}
}

// overlayDisk makes a qcow2 overlay on a read-only artifact so that a VM
// can write (and a larger virtual size can be given) without touching the
// shared build output.
func overlayDisk(t testing.TB, base string, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("SKIP: qemu-img not found (Debian qemu-utils; run scripts/deps.sh)")
	}
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	args := []string{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, p}
	if size > 0 {
		args = append(args, fmt.Sprint(size))
	}
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
	}
	return p
}

func bootISO(t testing.TB, name string, fw qemu.Firmware, asDisk bool) (*Standin, time.Duration) {
	a := artifacts(t, "amd64")
	iso := a.file(t, "keso-amd64.iso")
	cfg := qemu.Config{LogDir: logDir(t), Name: name, Arch: "amd64", Firmware: fw}
	if asDisk {
		cfg.Disks = []string{overlayDisk(t, iso, 0)}
		cfg.Boot = "c"
	} else {
		cfg.CDROM = iso
		cfg.Boot = "d"
	}
	vm := qemu.Start(t, cfg)
	s, took := handoff(t, vm)
	vm.Stop()
	checkCommon(t, s, a, "live")
	checkRAMVar(t, s)
	dev := "/dev/sr0"
	if asDisk {
		dev = "/dev/vda"
	}
	if !strings.HasPrefix(s.Boot.Root, dev) || !strings.HasSuffix(s.Boot.Root, ":/keso/root.squashfs") {
		t.Errorf("boot.json root = %q, want the squashfs on the %s ISO (%s…:/keso/root.squashfs)", s.Boot.Root, map[bool]string{false: "CD-ROM", true: "disk"}[asDisk], dev)
	}
	if !strings.HasPrefix(s.Mounts["/"].Source, "/dev/loop") {
		t.Errorf("/ source = %q, want a loop device", s.Mounts["/"].Source)
	}
	return s, took
}

// Test 1: the amd64 ISO as a CD-ROM through SeaBIOS + isolinux.
func TestBootISOBIOS(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootISO(t, "iso-bios-cd", qemu.BIOS, false)
}

// Test 2: the same ISO as a CD-ROM through OVMF + systemd-boot.
func TestBootISOUEFI(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootISO(t, "iso-uefi-cd", qemu.UEFI, false)
}

// Test 3: the same ISO attached as a disk, as if written to a USB stick
// with dd, through UEFI and BIOS.
func TestBootISOAsDisk(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	for _, fw := range []qemu.Firmware{qemu.UEFI, qemu.BIOS} {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			bootISO(t, "iso-"+string(fw)+"-disk", fw, true)
		})
	}
}

// Test 4: the raw disk image through UEFI, on a virtual disk 1 GiB larger
// than the image: disk mode, slot a, /var on KESO_STATE grown to the disk.
func TestBootRawDiskUEFI(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootRawDisk(t, "raw-uefi")
}

func bootRawDisk(t testing.TB, name string) (*Standin, time.Duration) {
	a := artifacts(t, "amd64")
	raw := a.file(t, "keso-amd64.img")
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	const extra = 1 << 30
	disk := overlayDisk(t, raw, fi.Size()+extra)
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: name, Arch: "amd64", Firmware: qemu.UEFI, Disks: []string{disk}, Boot: "c"})
	s, took := handoff(t, vm)
	vm.Stop()
	checkCommon(t, s, a, "disk")
	if s.Boot.Slot != "a" {
		t.Errorf("boot.json slot = %q, want a", s.Boot.Slot)
	}
	checkVerityRoot(t, s, "/dev/vda")
	v := s.Mounts["/var"]
	if v.FSType != "ext4" || v.Source != s.Boot.State || v.Root != "/var" || s.Boot.State == "" {
		t.Errorf("/var is %+v (state %q), want ext4 bind-mounted from /var on the KESO_STATE partition", v, s.Boot.State)
	}
	if st := s.Mounts["/keso/state"]; st.FSType != "ext4" || st.Source != s.Boot.State {
		t.Errorf("/keso/state is %+v, want the KESO_STATE ext4 %q", st, s.Boot.State)
	}
	if g := s.Boot.StateGrown; len(g) != 2 || g[1] <= g[0] {
		t.Errorf("state_grown_blocks = %v, want [before after] with after > before", g)
	}
	// The image's state partition is small (profile state_size_mib); after
	// growing into the extra 1 GiB, /var must be well above 900 MiB.
	if s.Var == nil || s.Var.TotalBytes < 900<<20 {
		t.Errorf("/var size = %+v, want > 900 MiB after growing KESO_STATE into the extra 1 GiB", s.Var)
	}
	return s, took
}

// netbootServer serves dir over HTTP on the host's loopback (the guest
// reaches it as 10.0.2.2) and counts requests per path.
type netbootServer struct {
	URL  string // as the guest sees it
	mu   sync.Mutex
	hits map[string]int
}

func serveNetboot(t testing.TB, dir string) *netbootServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &netbootServer{URL: fmt.Sprintf("http://10.0.2.2:%d", ln.Addr().(*net.TCPAddr).Port), hits: map[string]int{}}
	fs := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		fs.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("HTTP requests served from %s: %v", dir, s.hits)
			s.mu.Unlock()
		}
	})
	return s
}

func (s *netbootServer) count(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[p]
}

// Test 5: netboot through QEMU's iPXE ROM: TFTP boot.ipxe (the builder's
// script with keso-base set to our server), kernel, initrd and root over
// HTTP from a server on loopback.
func TestNetbootIPXE(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	bootNetbootIPXE(t, "netboot-ipxe")
}

func bootNetbootIPXE(t testing.TB, name string) (*Standin, time.Duration) {
	a := artifacts(t, "amd64")
	nbDir := filepath.Dir(a.file(t, "netboot/boot.ipxe"))
	srv := serveNetboot(t, nbDir)
	script, err := os.ReadFile(filepath.Join(nbDir, "boot.ipxe"))
	if err != nil {
		t.Fatal(err)
	}
	tftp := t.TempDir()
	// Preset ${keso-base}: the builder's script honours it.
	body := strings.TrimPrefix(string(script), "#!ipxe\n")
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte("#!ipxe\nset keso-base "+srv.URL+"\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: name, Arch: "amd64", Firmware: qemu.BIOS, TFTPDir: tftp, BootFile: "boot.ipxe", Boot: "n"})
	s, took := handoff(t, vm)
	vm.Stop()
	checkCommon(t, s, a, "netboot")
	checkRAMVar(t, s)
	if want := srv.URL + "/rootfs.squashfs"; s.Boot.Root != want {
		t.Errorf("boot.json root = %q, want %q", s.Boot.Root, want)
	}
	if !strings.Contains(s.Boot.Lease, "10.0.2.15") {
		t.Errorf("boot.json lease = %q, want QEMU's DHCP address 10.0.2.15", s.Boot.Lease)
	}
	for _, p := range []string{"/vmlinuz", "/initrd", "/rootfs.squashfs"} {
		if srv.count(p) == 0 {
			t.Errorf("the HTTP server never served %s", p)
		}
	}
	return s, took
}

// Test 6: arm64 and armv7 netboot smoke tests: -kernel/-initrd with the
// root over HTTP.
func TestNetbootArm(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	for _, arch := range []string{"arm64", "armv7"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			a := artifacts(t, arch)
			nb := a.file(t, "netboot/boot.ipxe")
			nbDir := filepath.Dir(nb)
			srv := serveNetboot(t, nbDir)
			cmdline := "console=ttyAMA0,115200 panic=10 keso.root=" + srv.URL + "/rootfs.squashfs"
			if sum := a.SHA256["netboot/rootfs.squashfs"]; sum != "" {
				cmdline += " keso.root_sha256=" + sum
			}
			vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "netboot-" + arch, Arch: arch, Firmware: qemu.Direct, Net: true,
				Kernel: filepath.Join(nbDir, "vmlinuz"), Initrd: filepath.Join(nbDir, "initrd"), Append: cmdline})
			s, _ := handoff(t, vm)
			vm.Stop()
			checkCommon(t, s, a, "netboot")
			checkRAMVar(t, s)
			if srv.count("/rootfs.squashfs") == 0 {
				t.Errorf("the HTTP server never served /rootfs.squashfs")
			}
		})
	}
}

// A failure in the initrd stage prints one line naming what was expected
// and what was found, then reboots after a bounded wait (QEMU runs with
// -no-reboot, so the reboot ends the VM) — never a kernel panic.
func TestNetbootBadChecksumReboots(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	nbDir := filepath.Dir(a.file(t, "netboot/boot.ipxe"))
	srv := serveNetboot(t, nbDir)
	bad := strings.Repeat("0", 64)
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "netboot-bad-sha", Arch: "amd64", Firmware: qemu.Direct, Net: true,
		Kernel: filepath.Join(nbDir, "vmlinuz"), Initrd: filepath.Join(nbDir, "initrd"),
		Append: "console=ttyS0,115200 panic=10 keso.root=" + srv.URL + "/rootfs.squashfs keso.root_sha256=" + bad})
	re := regexp.MustCompile(`keso-init: FAILED in initrd stage: netboot: \S+/rootfs.squashfs \(\d+ bytes\) has sha256 ([0-9a-f]{64}), but keso.root_sha256 wants 0{64}`)
	m, _, err := vm.Expect(re, bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if want := a.SHA256["netboot/rootfs.squashfs"]; want != "" && m[1] != want {
		t.Errorf("reported sha256 %s, want the artifact's %s", m[1], want)
	}
	if _, _, err := vm.Expect(regexp.MustCompile(`rebooting in \d+s`), time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the VM did not reboot (exit under -no-reboot) within 2 minutes of the failure")
	}
	if c := vm.Console(); strings.Contains(c, "Kernel panic") || strings.Contains(c, "STANDIN") {
		t.Errorf("console shows a kernel panic or a handoff after the failure")
	}
}

// With keso.debug a failure opens a rescue shell on the console instead of
// rebooting; with no shell in the initramfs it is keso-init's built-in one.
func TestRescueShellOnFailure(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	nbDir := filepath.Dir(a.file(t, "netboot/boot.ipxe"))
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "rescue", Arch: "amd64", Firmware: qemu.Direct,
		Kernel: filepath.Join(nbDir, "vmlinuz"), Initrd: filepath.Join(nbDir, "initrd"), Disks: []string{overlayDisk(t, a.file(t, "keso-amd64.img"), 0)},
		Append: "console=ttyS0,115200 panic=10 keso.slot=b keso.root_wait=3s keso.debug"})
	// Slot b of a fresh image is empty: found, but not a squashfs.
	if _, _, err := vm.Expect(regexp.MustCompile(`keso-init: FAILED in initrd stage: disk root: /dev/vda3 holds zeros, not a squashfs \(an empty or overwritten slot\?\)`), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := vm.Expect(regexp.MustCompile(`keso-rescue> `), time.Minute); err != nil {
		t.Fatal(err)
	}
	vm.Send("devs\n")
	if _, _, err := vm.Expect(regexp.MustCompile(`vda2 partlabel="KESO_ROOT_A"`), time.Minute); err != nil {
		t.Fatalf("rescue shell did not list the block devices: %v", err)
	}
	vm.Send("cat /proc/cmdline\n")
	if _, _, err := vm.Expect(regexp.MustCompile(`keso-rescue> (?s:.*)keso.slot=b keso.root_wait=3s keso.debug`), time.Minute); err != nil {
		t.Fatal(err)
	}
	vm.Send("exit\n")
	select {
	case <-vm.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatal("leaving the rescue shell did not reboot the VM")
	}
}
