package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// The boot agent's end-to-end tests (issue 4): the raw disk boots with a
// NoCloud seed made by cloud-localds, the agent applies every phase, and
// the test logs in over SSH with a key from the config and checks each
// effect inside the guest.

var readyRE = regexp.MustCompile(`keso: ready[^\n]*\n`)

// sshKey makes a key pair for a test.
func sshKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " e2e@test"
}

// seed writes a NoCloud seed with Debian's cloud-localds (a real client).
func seed(t testing.TB, userData, metaData string) string {
	t.Helper()
	if _, err := exec.LookPath("cloud-localds"); err != nil {
		t.Skip("SKIP: cloud-localds not found (Debian cloud-image-utils; scripts/deps.sh installs it)")
	}
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")
	os.WriteFile(ud, []byte(userData), 0o644)
	os.WriteFile(md, []byte(metaData), 0o644)
	out := filepath.Join(dir, "seed.iso")
	if b, err := exec.Command("cloud-localds", out, ud, md).CombinedOutput(); err != nil {
		t.Fatalf("cloud-localds: %v\n%s", err, b)
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dial logs in over the forwarded port, retrying while the guest comes up.
// It returns the client and the host key the server presented.
func dial(t testing.TB, port int, user string, signer ssh.Signer) (*ssh.Client, ssh.PublicKey) {
	t.Helper()
	var hostKey ssh.PublicKey
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil }}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
		if err == nil {
			return c, hostKey
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh %s@127.0.0.1:%d: %v", user, port, err)
		}
		time.Sleep(2 * time.Second)
	}
}

func run(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Errorf("guest: %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// agentVM boots the raw disk (an overlay, so a second boot sees the first
// one's state) with a seed, a data disk and two NICs: n0 on QEMU's user
// network (DHCP, SSH forwarded to port) and n1 on a hub with nothing else
// on it (for a static address, and a DHCP server that never answers).
func agentVM(t testing.TB, name, disk, seedISO, dataDisk string, port int) *qemu.VM {
	cfg := qemu.Config{LogDir: logDir(t), Name: name, Arch: "amd64", Firmware: qemu.UEFI, Boot: "c",
		// The seed is a virtio disk holding the ISO 9660 image (NoCloud
		// reads cidata from any block device). As an IDE CD-ROM next to
		// virtio disks under OVMF, the ATAPI drive was never probed here.
		Disks: []string{disk, dataDisk, seedISO},
		Extra: []string{
			"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", port),
			"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:e2:e0:01",
			"-netdev", "hubport,id=n1,hubid=7",
			"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:e2:e0:02",
		}}
	return qemu.Start(t, cfg)
}

func blankDisk(t testing.TB, size int64) string {
	p := filepath.Join(t.TempDir(), "data.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	return p
}

const agentConfig = `#cloud-config
hostname: e2e-node
ssh_authorized_keys:
  - %[1]s
write_files:
  - path: /etc/keso-e2e/hello.txt
    content: "hello from cloud-config\n"
    owner: rancher:rancher
    permissions: "0640"
  - path: /opt/e2e/greeting
    encoding: b64
    content: aGVsbG8gYjY0Cg==
boot_cmd:
  - "echo boot-cmd-ran > /run/boot-cmd-marker"
run_cmd:
  - [sh, -c, "echo run-cmd-ran > /run/run-cmd-marker"]
keso:
  sysctl:
    vm.swappiness: "17"
    net.ipv4.ip_forward: "1"
  modules: ["dummy numdummies=0"]
  dns_nameservers: [10.0.2.3]
  labels: {keso.io/e2e: "yes"}
  network:
    wait_online: 90s
    interfaces:
      - mac: "52:54:00:e2:e0:01"
        dhcp: true
      - mac: "52:54:00:e2:e0:02"
        addresses: [192.168.77.10/24]
        routes: [{to: 10.77.0.0/16, via: 192.168.77.1}]
        mtu: 1400
  disks:
    - device: /dev/vdb
      format: true
      fs_label: e2edata
      mount: /var/lib/e2e-data
  ssh:
    root_login: true
  k3s:
    role: server
    cluster_init: true
    args: [--disable=traefik]
    config:
      write-kubeconfig-mode: "0600"
`

// TestAgentAppliesConfig boots the raw disk with a cidata seed that
// exercises every phase, checks each effect over SSH, then boots the same
// disk again to prove persistence.
func TestAgentAppliesConfig(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	raw := a.file(t, "keso-amd64.img")
	fi, _ := os.Stat(raw)
	disk := overlayDisk(t, raw, fi.Size()+(512<<20))
	data := blankDisk(t, 256<<20)
	signer, pub := sshKey(t)
	iso := seed(t, fmt.Sprintf(agentConfig, pub), "instance-id: e2e-1\nlocal-hostname: from-meta-data\n")

	port := freePort(t)
	vm := agentVM(t, "agent-1", disk, iso, data, port)
	s, took := handoff(t, vm)
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatalf("agent never said ready: %v", err)
	}
	t.Logf("first boot: k3s handoff after %s", took.Round(100*time.Millisecond))

	// What k3s was handed.
	if got, want := strings.Join(s.Argv, " "), "/usr/local/bin/k3s server --disable=traefik"; got != want {
		t.Errorf("k3s argv = %q, want %q", got, want)
	}
	cfgYAML := ""
	if s.ConfigYAML != nil {
		cfgYAML = *s.ConfigYAML
	}
	for _, want := range []string{"cluster-init: true", "keso.io/e2e=yes", `write-kubeconfig-mode: "0600"`} {
		if !strings.Contains(cfgYAML, want) {
			t.Errorf("k3s config.yaml lacks %q:\n%s", want, cfgYAML)
		}
	}

	root, hostKey1 := dial(t, port, "root", signer)
	defer root.Close()
	rancher, _ := dial(t, port, "rancher", signer)
	if got := strings.TrimSpace(run(t, rancher, "id -u")); got != "1000" {
		t.Errorf("rancher's uid over SSH = %q, want 1000", got)
	}
	rancher.Close()

	checks := []struct {
		cmd, want string
	}{
		{"cat /proc/sys/kernel/hostname", "e2e-node"},
		{"cat /etc/hosts", "127.0.1.1"},
		{"cat /proc/sys/vm/swappiness", "17"},
		{"cat /proc/sys/net/ipv4/ip_forward", "1"},
		{"cat /proc/modules", "dummy "},
		{"cat /etc/resolv.conf", "nameserver 10.0.2.3"},
		{"cat /etc/keso-e2e/hello.txt", "hello from cloud-config"},
		{"cat /opt/e2e/greeting", "hello b64"},
		{"cat /run/boot-cmd-marker", "boot-cmd-ran"},
		{"cat /run/run-cmd-marker", "run-cmd-ran"},
		{"cat /proc/mounts", "/dev/vdb /var/lib/e2e-data ext4"},
		{"ip addr", "192.168.77.10/24"},
		{"cat /proc/net/route", "00004D0A\t014DA8C0"}, // 10.77.0.0/16 via 192.168.77.1
		{"for i in /sys/class/net/*; do echo $(cat $i/address) $(cat $i/mtu); done", "52:54:00:e2:e0:02 1400"},
		{"cat /etc/rancher/k3s/config.yaml", "cluster-init: true"},
		{"cat /run/k3s-standin.json", `"argv":["/usr/local/bin/k3s","server","--disable=traefik"]`},
		{"keso status", "k3s:       server running"},
	}
	for _, c := range checks {
		if out := run(t, root, c.cmd); !strings.Contains(out, c.want) {
			t.Errorf("guest %q:\n%s\nwant it to contain %q", c.cmd, out, c.want)
		}
	}
	// Modes and owners, through the real SFTP subsystem.
	sc, err := sftp.NewClient(root)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	st, err := sc.Stat("/etc/keso-e2e/hello.txt")
	if err != nil {
		t.Fatalf("sftp stat: %v", err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("hello.txt mode = %v, want 0640", st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*sftp.FileStat); !ok || sys.UID != 1000 || sys.GID != 1000 {
		t.Errorf("hello.txt owner = %+v, want 1000:1000", st.Sys())
	}
	// Something on the data disk, to find again after the reboot.
	w, err := sc.Create("/var/lib/e2e-data/kept")
	if err != nil {
		t.Fatalf("sftp create on the data disk: %v", err)
	}
	io.WriteString(w, "written on boot 1\n")
	w.Close()
	sc.Close()
	run(t, root, "sync")
	root.Close()
	vm.Stop()

	// Second boot of the same disks: host keys and the data disk are kept,
	// and the disk is not formatted again.
	port2 := freePort(t)
	vm2 := agentVM(t, "agent-2", disk, iso, data, port2)
	if _, _, err := vm2.Expect(readyRE, bootTimeout); err != nil {
		t.Fatalf("second boot: agent never said ready: %v", err)
	}
	root2, hostKey2 := dial(t, port2, "root", signer)
	defer root2.Close()
	if string(hostKey1.Marshal()) != string(hostKey2.Marshal()) {
		t.Errorf("SSH host key changed across boots: %s then %s", ssh.FingerprintSHA256(hostKey1), ssh.FingerprintSHA256(hostKey2))
	}
	if out := run(t, root2, "cat /var/lib/e2e-data/kept"); !strings.Contains(out, "written on boot 1") {
		t.Errorf("data disk lost its file across the reboot: %q", out)
	}
	if strings.Contains(vm2.Console(), "keso: disks: format") {
		t.Errorf("second boot formatted the data disk again")
	}
	vm2.Stop()
}

const brokenConfig = `#cloud-config
hostname: broken-node
ssh_authorized_keys:
  - %[1]s
  - not-a-key
write_files:
  - path: ../../etc/evil
    content: x
  - path: /etc/keso-e2e/ok.txt
    content: "still applied\n"
boot_cmd:
  - "exit 7"
keso:
  dns_nameservers: {primary: 1.1.1.1}
  network:
    wait_online: 15s
    interfaces:
      - mac: "52:54:00:e2:e0:01"
        dhcp: true
      - mac: "52:54:00:e2:e0:02"
        dhcp: true
  ssh:
    root_login: true
`

// TestAgentSurvivesBadConfig: wrong types, invalid values, a path outside
// the root, a failing boot_cmd and a DHCP server that never answers are
// reported with file:line, everything valid is applied, and SSH and the
// console login keep working.
func TestAgentSurvivesBadConfig(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	disk := overlayDisk(t, a.file(t, "keso-amd64.img"), 0)
	signer, pub := sshKey(t)
	iso := seed(t, fmt.Sprintf(brokenConfig, pub), "instance-id: e2e-broken\n")
	port := freePort(t)
	vm := agentVM(t, "agent-broken", disk, iso, blankDisk(t, 64<<20), port)
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatalf("agent never said ready: %v", err)
	}
	con := vm.Console()
	for _, want := range []string{
		"cidata:/dev/vdc:user-data:14:20: error: keso.dns_nameservers: expected a list",
		"cidata:/dev/vdc:user-data:7:11: error: write_files[0].path",
		"cidata:/dev/vdc:user-data:5:5: error: ssh_authorized_keys[1]",
		"boot_cmd[0]",
		"exit status 7",
		"login:",
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	root, _ := dial(t, port, "root", signer)
	defer root.Close()
	if out := run(t, root, "cat /etc/keso-e2e/ok.txt /proc/sys/kernel/hostname"); !strings.Contains(out, "still applied") || !strings.Contains(out, "broken-node") {
		t.Errorf("valid parts of the config were not applied: %q", out)
	}
	if out := run(t, root, "keso status"); !strings.Contains(out, "exit status 7") || !strings.Contains(out, "user-data:") {
		t.Errorf("keso status does not report the failures with positions:\n%s", out)
	}
	// The console still answers with a login prompt.
	vm.Send("\r")
	if _, _, err := vm.Expect(regexp.MustCompile(`login: `), 30*time.Second); err != nil {
		t.Errorf("no login prompt on the console: %v", err)
	}
	vm.Stop()
}

const joinConfig = `#cloud-config
hostname: store-agent-1
keso:
  k3s:
    role: agent
    server_url: https://10.0.2.2:6443
    token: store-cluster-secret
  labels: {keso.io/store: "0042"}
  network:
    wait_online: 15s
`

// TestAgentJoinConfig: the same image booted with an agent config hands
// k3s `agent`, the server to join and the token, where the server config
// of TestAgentAppliesConfig hands it `server` with cluster-init.
func TestAgentJoinConfig(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	disk := overlayDisk(t, a.file(t, "keso-amd64.img"), 0)
	iso := seed(t, joinConfig, "instance-id: e2e-join\n")
	vm := agentVM(t, "agent-join", disk, iso, blankDisk(t, 64<<20), freePort(t))
	s, _ := handoff(t, vm)
	vm.Stop()
	if got, want := strings.Join(s.Argv, " "), "/usr/local/bin/k3s agent"; got != want {
		t.Errorf("k3s argv = %q, want %q", got, want)
	}
	cfg := ""
	if s.ConfigYAML != nil {
		cfg = *s.ConfigYAML
	}
	for _, want := range []string{"server: https://10.0.2.2:6443", "token: store-cluster-secret", "keso.io/store=0042"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("k3s config.yaml lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "cluster-init") {
		t.Errorf("an agent was given cluster-init:\n%s", cfg)
	}
}
