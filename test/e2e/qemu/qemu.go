// Package qemu starts QEMU virtual machines for keso's end-to-end tests:
// software emulation (TCG) for amd64, arm64 and armv7, BIOS or UEFI
// firmware, direct kernel boots, CD-ROMs, disks and netboot; it captures
// the serial console into a buffer and a log file, waits for regular
// expressions with timeouts, and kills the VM on cleanup.
//
// The machine runs at most two VMs at once across every user: Start takes
// one of the two machine-wide slots (flock on /tmp/keso-qemu-slot.0 or .1)
// before QEMU starts and releases it when the VM is gone.
package qemu

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Firmware selects how the VM starts.
type Firmware string

// Firmware kinds.
const (
	BIOS   Firmware = "bios"   // SeaBIOS (amd64 only)
	UEFI   Firmware = "uefi"   // OVMF / AAVMF
	Direct Firmware = "direct" // -kernel/-initrd, the machine's default firmware
	UBoot  Firmware = "uboot"  // Debian's U-Boot for QEMU's virt machine (distro boot: boot.scr)
)

// Config describes one VM.
type Config struct {
	Name     string // used in log file names
	Arch     string // amd64, arm64 or armv7
	Firmware Firmware
	MemMiB   int // default 1024

	Kernel, Initrd, Append string // direct kernel boot

	CDROM string   // ISO attached as a CD-ROM (IDE on amd64, virtio-scsi on arm)
	Disks []string // disk images attached as virtio disks; .qcow2 by extension, else raw

	// Netboot: user networking with a virtio NIC; TFTPDir and BootFile make
	// QEMU's DHCP hand out a boot file, and Boot "n" makes firmware netboot.
	Net      bool
	TFTPDir  string
	BootFile string
	Boot     string // -boot order: "d" CD, "c" disk, "n" network

	// A NIC on a tap device instead (the netboot rack test): Tap is the
	// device's name in network namespace NetNS (QEMU runs in it, through
	// `ip netns exec`), MAC the NIC's address. The NIC boots first
	// (bootindex 0), the disks after it; with a direct kernel boot it is
	// only the VM's network.
	Tap, MAC, NetNS string
	// NoNICROM leaves out the NIC's iPXE option ROM: UEFI firmware then
	// boots the network with its own PXE (EDK2's PxeBcDxe), over TFTP.
	NoNICROM bool

	Extra  []string // extra QEMU arguments
	LogDir string   // where the console log goes; default a test temp dir

	// Board, when set, is an emulated board instead of the virt/pc
	// machine (raspi.go): "raspi3b". Disks become its SD card.
	Board string
	DTB   string // -dtb for a board's direct kernel boot

	// HeldSlot says the caller holds a machine-wide VM slot (TakeSlot)
	// for this VM: a machine that reboots keeps its slot between boots.
	HeldSlot bool
}

// VM is a running QEMU.
type VM struct {
	t       testing.TB
	cfg     Config
	cmd     *exec.Cmd
	start   time.Time
	logPath string

	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	exited  chan struct{}
	waitErr error
	slot    *os.File
	stdin   io.WriteCloser
}

// Send types s on the serial console.
func (vm *VM) Send(s string) error {
	_, err := io.WriteString(vm.stdin, s)
	return err
}

// Binary returns the QEMU system emulator for arch.
func Binary(arch string) string {
	switch arch {
	case "arm64":
		return "qemu-system-aarch64"
	case "armv7", "arm":
		return "qemu-system-arm"
	}
	return "qemu-system-x86_64"
}

// Firmware files (Debian ovmf, qemu-efi-aarch64, qemu-efi-arm).
var firmwareFiles = map[string][2]string{
	"amd64": {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	"arm64": {"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
	"armv7": {"/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/AAVMF/AAVMF32_VARS.fd"},
}

// U-Boot builds for QEMU's virt machine (Debian u-boot-qemu).
var ubootFiles = map[string]string{
	"arm64": "/usr/lib/u-boot/qemu_arm64/u-boot.bin",
	"armv7": "/usr/lib/u-boot/qemu_arm/u-boot.bin",
}

// Available reports why cfg cannot run here ("" when it can): a missing
// emulator or firmware file, named so a skip message says what to install.
func Available(cfg Config) string {
	if _, err := exec.LookPath(Binary(cfg.Arch)); err != nil {
		return Binary(cfg.Arch) + " not found (Debian qemu-system-x86 / qemu-system-arm; run scripts/deps.sh)"
	}
	if cfg.Firmware == UEFI {
		for _, f := range firmwareFiles[cfg.Arch] {
			if _, err := os.Stat(f); err != nil {
				return f + " not found (Debian ovmf / qemu-efi-aarch64 / qemu-efi-arm; run scripts/deps.sh)"
			}
		}
	}
	if cfg.Firmware == UBoot {
		if _, err := os.Stat(ubootFiles[cfg.Arch]); err != nil {
			return fmt.Sprintf("no U-Boot for %s at %q (Debian u-boot-qemu; run scripts/deps.sh)", cfg.Arch, ubootFiles[cfg.Arch])
		}
	}
	return ""
}

// Args builds the QEMU command line for cfg; dir holds per-VM files (the
// UEFI variable store copy). It is pure apart from naming files in dir.
func Args(cfg Config, dir string) []string {
	if cfg.Board != "" {
		return boardArgs(cfg)
	}
	mem := cfg.MemMiB
	if mem == 0 {
		mem = 1024
	}
	// A virtio RNG, as most clouds give: without one an idle TCG guest
	// can take minutes to seed its CRNG, and everything that asks for
	// random bytes (DHCP transaction ids, SSH key exchange) waits.
	a := []string{"-accel", "tcg", "-m", fmt.Sprint(mem), "-display", "none", "-no-reboot",
		"-serial", "stdio", "-monitor", "none", "-nodefaults",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0"}
	switch cfg.Arch {
	case "arm64":
		a = append(a, "-M", "virt", "-cpu", "cortex-a57")
	case "armv7":
		a = append(a, "-M", "virt,highmem=off", "-cpu", "cortex-a15")
	default:
		a = append(a, "-M", "pc")
	}
	if cfg.Firmware == UEFI {
		ff := firmwareFiles[cfg.Arch]
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ff[0],
			"-drive", "if=pflash,format=raw,unit=1,file="+filepath.Join(dir, "vars.fd"))
	}
	if cfg.Firmware == UBoot {
		a = append(a, "-bios", ubootFiles[cfg.Arch])
	}
	a = append(a, kernelArgs(cfg)...)
	if cfg.CDROM != "" {
		if cfg.Arch == "amd64" {
			a = append(a, "-drive", "file="+cfg.CDROM+",format=raw,media=cdrom,if=ide,readonly=on")
		} else {
			a = append(a, "-device", "virtio-scsi-pci,id=scsi0",
				"-drive", "if=none,id=cd0,media=cdrom,format=raw,readonly=on,file="+cfg.CDROM,
				"-device", "scsi-cd,drive=cd0,bus=scsi0.0")
		}
	}
	for i, d := range cfg.Disks {
		f := "raw"
		if strings.HasSuffix(d, ".qcow2") {
			f = "qcow2"
		}
		a = append(a, "-drive", fmt.Sprintf("file=%s,format=%s,if=none,id=disk%d", d, f, i),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,bootindex=%d", i, i+1))
	}
	if cfg.Tap != "" {
		nic := "virtio-net-pci,netdev=n0,bootindex=0,mac=" + cfg.MAC
		if cfg.Kernel != "" {
			// A direct kernel boot takes boot index 0 (QEMU's linuxboot ROM).
			nic = "virtio-net-pci,netdev=n0,mac=" + cfg.MAC
		}
		if cfg.NoNICROM {
			nic += ",romfile="
		}
		a = append(a, "-netdev", "tap,id=n0,ifname="+cfg.Tap+",script=no,downscript=no", "-device", nic)
	} else if cfg.Net || cfg.TFTPDir != "" {
		nd := "user,id=n0"
		if cfg.TFTPDir != "" {
			nd += ",tftp=" + cfg.TFTPDir
		}
		if cfg.BootFile != "" {
			nd += ",bootfile=" + cfg.BootFile
		}
		a = append(a, "-netdev", nd, "-device", "virtio-net-pci,netdev=n0")
	}
	if cfg.Boot != "" {
		a = append(a, "-boot", cfg.Boot)
	}
	return append(a, cfg.Extra...)
}

// kernelArgs are the direct kernel boot arguments of cfg (none without
// a Kernel).
func kernelArgs(cfg Config) []string {
	if cfg.Kernel == "" {
		return nil
	}
	a := []string{"-kernel", cfg.Kernel}
	if cfg.DTB != "" {
		a = append(a, "-dtb", cfg.DTB)
	}
	if cfg.Initrd != "" {
		a = append(a, "-initrd", cfg.Initrd)
	}
	if cfg.Append != "" {
		a = append(a, "-append", cfg.Append)
	}
	return a
}

// Start takes a machine-wide VM slot and starts QEMU. The VM is killed and
// the slot released in t.Cleanup.
func Start(t testing.TB, cfg Config) *VM {
	t.Helper()
	if why := Available(cfg); why != "" {
		t.Skipf("SKIP (cannot run VM): %s", why)
	}
	dir := t.TempDir()
	if cfg.Firmware == UEFI {
		vars, err := os.ReadFile(firmwareFiles[cfg.Arch][1])
		if err != nil {
			t.Fatalf("qemu: read UEFI variable store: %v", err)
		}
		if cfg.Arch != "amd64" {
			// AAVMF pflash devices must be exactly 64 MiB.
			vars = append(vars, make([]byte, (64<<20)-len(vars))...)
		}
		if err := os.WriteFile(filepath.Join(dir, "vars.fd"), vars, 0o644); err != nil {
			t.Fatalf("qemu: %v", err)
		}
	}
	logDir := cfg.LogDir
	if logDir == "" {
		logDir = dir
	}
	name := cfg.Name
	if name == "" {
		name = "vm"
	}
	vm := &VM{t: t, cfg: cfg, changed: make(chan struct{}), exited: make(chan struct{}),
		logPath: filepath.Join(logDir, name+".console.log")}
	if !cfg.HeldSlot {
		vm.slot = acquireSlot(t)
	}
	logf, err := os.Create(vm.logPath)
	if err != nil {
		releaseSlot(vm.slot)
		t.Fatalf("qemu: %v", err)
	}
	args := Args(cfg, dir)
	vm.cmd = exec.Command(Binary(cfg.Arch), args...)
	if cfg.NetNS != "" {
		vm.cmd = exec.Command("ip", append([]string{"netns", "exec", cfg.NetNS, Binary(cfg.Arch)}, args...)...)
	}
	vm.cmd.Dir = dir
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := vm.cmd.StdinPipe()
	if err != nil {
		releaseSlot(vm.slot)
		t.Fatalf("qemu: %v", err)
	}
	vm.stdin = stdin
	pr, pw := io.Pipe()
	vm.cmd.Stdout, vm.cmd.Stderr = pw, pw
	fmt.Fprintf(logf, "# %s %s\n", Binary(cfg.Arch), strings.Join(args, " "))
	if err := vm.cmd.Start(); err != nil {
		releaseSlot(vm.slot)
		t.Fatalf("qemu: start %s: %v", Binary(cfg.Arch), err)
	}
	vm.start = time.Now()
	go vm.capture(pr, logf)
	go func() {
		err := vm.cmd.Wait()
		pw.Close()
		vm.mu.Lock()
		vm.waitErr = err
		vm.mu.Unlock()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		vm.Stop()
		logf.Close()
		if t.Failed() {
			t.Logf("console of %s (%s): last 3000 bytes:\n%s", name, vm.logPath, Tail(vm.Console(), 3000))
		}
	})
	t.Logf("qemu %s started: console log %s", name, vm.logPath)
	return vm
}

// Tail is the last n bytes of s (a console, for failure messages).
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (vm *VM) capture(r io.Reader, logf *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := r.Read(b)
		if n > 0 {
			logf.Write(b[:n])
			vm.mu.Lock()
			vm.buf.Write(b[:n])
			close(vm.changed)
			vm.changed = make(chan struct{})
			vm.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Console returns everything the serial console printed so far.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.buf.String()
}

// LogPath is the console log file.
func (vm *VM) LogPath() string { return vm.logPath }

// Since returns how long the VM has been running.
func (vm *VM) Since() time.Duration { return time.Since(vm.start) }

// Expect waits until re matches the console output (from the start) and
// returns the submatches and the time since QEMU started. It fails with the
// console tail when the timeout passes or QEMU exits first.
func (vm *VM) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, time.Duration, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		vm.mu.Lock()
		m := re.FindStringSubmatch(vm.buf.String())
		ch := vm.changed
		vm.mu.Unlock()
		if m != nil {
			return m, time.Since(vm.start), nil
		}
		select {
		case <-ch:
		case <-vm.exited:
			vm.mu.Lock()
			m := re.FindStringSubmatch(vm.buf.String())
			werr := vm.waitErr
			vm.mu.Unlock()
			if m != nil {
				return m, time.Since(vm.start), nil
			}
			return nil, time.Since(vm.start), fmt.Errorf("qemu exited (%v) before the console matched %q; console tail:\n%s", werr, re, Tail(vm.Console(), 2000))
		case <-deadline.C:
			return nil, time.Since(vm.start), fmt.Errorf("console did not match %q within %s; console tail:\n%s", re, timeout, Tail(vm.Console(), 2000))
		}
	}
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Stop kills QEMU and gives its machine-wide slot back at once (Cleanup
// does it too; calling it early frees the slot for the next VM).
func (vm *VM) Stop() {
	vm.Kill()
	vm.mu.Lock()
	slot := vm.slot
	vm.slot = nil
	vm.mu.Unlock()
	releaseSlot(slot)
}

// Kill stops QEMU (the whole process group) and waits for it.
func (vm *VM) Kill() {
	select {
	case <-vm.exited:
		return
	default:
	}
	if vm.cmd.Process != nil {
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-vm.exited:
	case <-time.After(10 * time.Second):
	}
}
