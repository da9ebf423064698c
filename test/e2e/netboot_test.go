package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/rack"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// rackNet is a rack network that touches nothing outside: namespace
// "rack" holds the bridge, the netboot server (10.77.0.1) and the VMs'
// taps; namespace "site" holds the site's own DHCP server (dnsmasq with
// PXE off, 10.77.0.2), joined to the bridge by a veth pair.
type rackNet struct {
	rack, site string
}

func newRackNet(t *testing.T, taps int) *rackNet {
	t.Helper()
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	n := &rackNet{rack: "keso-rack-" + id, site: "keso-site-" + id}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.rack).Run()
		exec.Command("ip", "netns", "del", n.site).Run()
	})
	cmds := [][]string{
		{"netns", "add", n.rack},
		{"netns", "add", n.site},
		{"-n", n.rack, "link", "set", "lo", "up"},
		{"-n", n.site, "link", "set", "lo", "up"},
		{"-n", n.rack, "link", "add", "br0", "type", "bridge"},
		{"-n", n.rack, "addr", "add", "10.77.0.1/24", "dev", "br0"},
		{"-n", n.rack, "link", "set", "br0", "up"},
		{"-n", n.rack, "link", "add", "vrack", "type", "veth", "peer", "name", "vsite", "netns", n.site},
		{"-n", n.rack, "link", "set", "vrack", "master", "br0", "up"},
		{"-n", n.site, "addr", "add", "10.77.0.2/24", "dev", "vsite"},
		{"-n", n.site, "link", "set", "vsite", "up"},
	}
	for i := 0; i < taps; i++ {
		tap := fmt.Sprintf("tap%d", i)
		cmds = append(cmds,
			[]string{"-n", n.rack, "tuntap", "add", "dev", tap, "mode", "tap"},
			[]string{"-n", n.rack, "link", "set", tap, "master", "br0", "up"})
	}
	for _, c := range cmds {
		if b, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(c, " "), err, b)
		}
	}
	return n
}

// startInNS runs a long-lived command in network namespace ns, its output
// in log; it is killed when the test ends.
func startInNS(t *testing.T, ns, log string, argv ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// `ip netns exec` execs the command: it dies with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s (%s):\n%s", filepath.Base(argv[0]), log, qemu.Tail(string(b), 4000))
		}
	})
}

// rackMachine is one VM of the rack.
type rackMachine struct {
	name, mac, hostname string
	fw                  qemu.Firmware
	install             bool // the UEFI one: install, reboot, boot the disk
}

// TestNetbootRack: `keso-build netboot serve` in proxy mode beside a
// site DHCP server PXE-boots three machines: a BIOS one (QEMU's iPXE ROM)
// live, a UEFI one (OVMF) that installs to its disk, reboots and boots the
// disk (the server now says local), and one with no file of its own that
// gets the default. The UEFI one boots with OVMF's own PXE (no iPXE ROM
// on its NIC), so it takes the proxy's PXE offer, its port-4011 answer
// if it asks, and iPXE (snponly.efi) over TFTP; the BIOS ones start in QEMU's iPXE ROM,
// which the proxy sends straight to the HTTP script. Each must reach the k3s hand-off as the node its
// config names, and the server's status must list every step.
func TestNetbootRack(t *testing.T) {
	skipUnlessE2E(t)
	for _, need := range []string{"/usr/sbin/dnsmasq", "/usr/lib/ipxe/snponly.efi", "/usr/lib/ipxe/undionly.kpxe"} {
		if _, err := os.Stat(need); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing: scripts/deps.sh installs it (dnsmasq-base, ipxe)", need)
			}
			t.Skipf("SKIP (loud): %s missing; install dnsmasq-base and ipxe (scripts/deps.sh)", need)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP (loud): the rack test makes network namespaces, a bridge and taps: run as root")
	}
	t.Parallel()
	a := artifacts(t, "amd64")
	dir := t.TempDir()

	// keso-build itself, as an operator runs it.
	kb := filepath.Join(dir, "keso-build")
	if b, err := exec.Command("go", "build", "-o", kb, "../../cmd/keso-build").CombinedOutput(); err != nil {
		t.Fatalf("build keso-build: %v\n%s", err, b)
	}
	// The build's output folder, amd64 only.
	art := filepath.Join(dir, "dist")
	if err := os.MkdirAll(filepath.Join(art, "amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(a.Dir, "netboot"), filepath.Join(art, "amd64", "netboot")); err != nil {
		t.Fatal(err)
	}

	ms := []rackMachine{
		{name: "bios-live", mac: "52-54-00-4b-00-01", hostname: "rack-bios", fw: qemu.BIOS},
		{name: "uefi-install", mac: "52-54-00-4b-00-02", hostname: "rack-uefi", fw: qemu.UEFI, install: true},
		{name: "default", mac: "52-54-00-4b-00-03", hostname: "keso-4b0003", fw: qemu.BIOS},
	}
	mdir := filepath.Join(dir, "machines")
	os.MkdirAll(filepath.Join(mdir, "machines"), 0o755)
	files := map[string]string{
		"default.yaml":                    "hostname: ${hostname}\nk3os:\n  labels:\n    rack.keso.io/file: default\n    rack.keso.io/mac: \"${mac}\"\n",
		"machines/" + ms[0].mac + ".yaml": "netboot:\n  hostname: rack-bios\nhostname: ${hostname}\nk3os:\n  labels:\n    rack.keso.io/file: bios\n",
		"machines/" + ms[1].mac + ".yaml": "netboot:\n  mode: install\n  device: /dev/vda\n  hostname: rack-uefi\nhostname: ${hostname}\nk3os:\n  labels:\n    rack.keso.io/file: uefi\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mdir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{ms[0].mac: "rack.keso.io/file=bios", ms[1].mac: "rack.keso.io/file=uefi", ms[2].mac: "rack.keso.io/mac=" + ms[2].mac}

	n := newRackNet(t, len(ms))
	state := filepath.Join(dir, "state")
	startInNS(t, n.site, filepath.Join(dir, "dnsmasq.log"), "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=vsite", "--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--user=root", "--log-dhcp", "--pid-file=")
	startInNS(t, n.rack, filepath.Join(dir, "serve.log"), kb, "netboot", "serve", "--dir", mdir, "--artifacts", art, "--state", state,
		"--iface", "br0", "--http-port", "8080", "--dhcp", "proxy")

	// Power the rack on (two VMs run at a time: the third waits for a
	// slot, as a cold rack's last machine would wait for its switch port).
	took := make([]time.Duration, len(ms))
	t.Run("power-on", func(t *testing.T) {
		for i, m := range ms {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				time.Sleep(time.Duration(i) * 2 * time.Second)
				took[i] = bootRackMachine(t, n, i, m, want[m.mac])
			})
		}
	})

	// The status as the operator sees it.
	out, err := exec.Command(kb, "netboot", "status", "--state", state).CombinedOutput()
	if err != nil {
		t.Fatalf("keso-build netboot status: %v\n%s", err, out)
	}
	t.Logf("keso-build netboot status:\n%s", out)
	events, err := rack.ReadEvents(state)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]rack.MachineStatus{}
	for _, s := range rack.Summarize(events) {
		sum[s.MAC] = s
	}
	for i, m := range ms {
		s, ok := sum[m.mac]
		if !ok {
			t.Errorf("%s (%s): not in the status", m.name, m.mac)
			continue
		}
		steps := []string{rack.StepDHCP, rack.StepIPXE, rack.StepKernel, rack.StepInitrd, rack.StepRoot, rack.StepConfig, rack.StepK3s, rack.StepLog}
		if m.install {
			steps = append(steps, rack.StepInstalled)
		}
		for _, st := range steps {
			if _, ok := s.Reached(st); !ok {
				t.Errorf("%s (%s): status has no %s step", m.name, m.mac, st)
			}
		}
		tftp := false
		for _, e := range s.Events {
			if e.Step == rack.StepRefused {
				t.Errorf("%s: the server refused a request: %s", m.name, e.Detail)
			}
			tftp = tftp || e.Step == rack.StepIPXE && strings.HasPrefix(e.Detail, "TFTP sent snponly.efi")
		}
		if m.fw == qemu.UEFI && !tftp {
			t.Errorf("%s: OVMF's PXE never got snponly.efi over TFTP", m.name)
		}
		if d, ok := s.Reached(rack.StepK3s); ok {
			t.Logf("%s (%s): power-on to the k3s hand-off %s (QEMU start to the stand-in's line); server's first request to k3s started %s",
				m.name, m.mac, took[i].Round(100*time.Millisecond), d.Round(100*time.Millisecond))
		}
		if log, err := os.ReadFile(filepath.Join(state, "logs", m.mac+".log")); err != nil || !strings.Contains(string(log), "k3s handed off") {
			t.Errorf("%s: the boot log the node posted (%v) lacks the hand-off line", m.name, err)
		}
	}
}

// bootRackMachine powers one machine on and returns the time from power-on
// to its (last) k3s hand-off.
func bootRackMachine(t *testing.T, n *rackNet, i int, m rackMachine, label string) time.Duration {
	cfg := qemu.Config{LogDir: logDir(t), Name: "rack-" + m.name, Arch: "amd64", Firmware: m.fw, Boot: "n",
		Tap: fmt.Sprintf("tap%d", i), MAC: strings.ReplaceAll(m.mac, "-", ":"), NetNS: n.rack,
		// OVMF's own PXE, not the NIC's iPXE ROM: the proxy's TFTP path.
		NoNICROM: m.fw == qemu.UEFI}
	if m.fw == qemu.UEFI {
		// OVMF tries PXE and HTTP boot over IPv4, then over IPv6, before
		// the disk; the IPv6 attempts wait minutes for an IPv6 network.
		// A site turns them off in firmware setup; here, fw_cfg does.
		cfg.Extra = []string{"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no"}
	}
	var disk string
	if m.install {
		disk = blankDisk(t, 4<<30)
		cfg.Disks = []string{disk}
		cfg.Boot = ""
		defer qemu.TakeSlot(t)()
		cfg.HeldSlot = true
	}
	start := time.Now()
	vm := qemu.Start(t, cfg)
	if m.install {
		if _, _, err := vm.Expect(regexp.MustCompile(`installed to /dev/vda`), 10*time.Minute); err != nil {
			t.Fatalf("%s: no install: %v", m.name, err)
		}
		select {
		case <-vm.Exited():
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: did not reboot after the install", m.name)
		}
		vm.Stop()
		// The reboot: the same NIC first, then the disk.
		cfg.Name += "-reboot"
		vm = qemu.Start(t, cfg)
	}
	mm, _, err := vm.Expect(standinRE, 2*bootTimeout)
	if err != nil {
		t.Fatalf("%s: no k3s hand-off: %v", m.name, err)
	}
	took := time.Since(start)
	vm.Stop()
	var s Standin
	if err := json.Unmarshal([]byte(mm[1]), &s); err != nil {
		t.Fatalf("%s: decode the stand-in's record: %v", m.name, err)
	}
	mode := "netboot"
	if m.install {
		mode = "disk"
	}
	if s.Boot.Mode != mode {
		t.Errorf("%s: boot mode %q, want %q", m.name, s.Boot.Mode, mode)
	}
	if s.NodeName != m.hostname {
		t.Errorf("%s: k3s node name %q, want %q (its config's hostname)", m.name, s.NodeName, m.hostname)
	}
	if s.ConfigYAML == nil || !strings.Contains(*s.ConfigYAML, label) {
		t.Errorf("%s: k3s config lacks its machine's label %q: %v", m.name, label, s.ConfigYAML)
	}
	return took
}
