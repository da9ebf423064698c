package e2e

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
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

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// This file holds what the install, upgrade, rollback and power-cut tests
// share: the two signed test releases, a node (a disk that outlives its
// VMs, booted again after every reboot or cut), and an HTTP server on the
// host's loopback that the guest reaches as 10.0.2.2.

// upgradeReleases are v1 (installed) and v2 (the upgrade), both signed with
// the test release key, so each trusts the other.
func upgradeReleases(t testing.TB, arch string) (v1, v2 *Artifacts) {
	t.Helper()
	v1 = variant(t, arch, Variant{Name: "v1", Version: "1.0.0", Signed: true})
	v2 = variant(t, arch, Variant{Name: "v2", Version: "2.0.0", Signed: true,
		Outputs: []string{"squashfs", "vmlinuz", "initrd"}})
	return v1, v2
}

// deltaReleases are upgradeReleases with uncompressed roots (profile
// compression: none), the releases deltas are small for; v2 also carries
// a new file of deltaBlobBytes that does not compress (deltaExtra), so
// that its delta has data enough to cut a download of into pieces: the
// version alone changes a few hundred bytes of it.
func deltaReleases(t testing.TB, arch string) (v1, v2 *Artifacts) {
	t.Helper()
	v1 = variant(t, arch, Variant{Name: "v1-none", Version: "1.0.0", Signed: true, Compression: "none"})
	v2 = variant(t, arch, Variant{Name: "v2-none", Version: "2.0.0", Signed: true, Compression: "none",
		Extra: deltaExtra(t), Outputs: []string{"squashfs", "vmlinuz", "initrd"}})
	return v1, v2
}

// deltaBlobBytes is the size of deltaExtra's file.
const deltaBlobBytes = 256 << 10

// deltaExtra is a tree (keso-build --extra) with one file of
// deltaBlobBytes of pseudo-random bytes (a sha256 chain: the same every
// run), at a stable path under the cache, as a variant's key needs.
func deltaExtra(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cacheRoot(), "delta-extra-1")
	file := filepath.Join(dir, "usr/share/keso/test-blob")
	if fi, err := os.Stat(file); err == nil && fi.Size() == deltaBlobBytes {
		now := time.Now()
		os.Chtimes(dir, now, now) // in use: keep it from pruneCache
		return dir
	}
	var blob []byte
	sum := sha256.Sum256([]byte("keso delta test blob"))
	for len(blob) < deltaBlobBytes {
		blob = append(blob, sum[:]...)
		sum = sha256.Sum256(sum[:])
	}
	tmp, err := os.MkdirTemp(cacheRoot(), "delta-extra-tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "usr/share/keso"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "usr/share/keso/test-blob"), blob[:deltaBlobBytes], 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process made it first (the content is the same).
		if fi, serr := os.Stat(file); serr != nil || fi.Size() != deltaBlobBytes {
			t.Fatalf("delta test tree: %v", err)
		}
	}
	return dir
}

// upgradeImage is the signed upgrade artifact of a release.
func upgradeImage(t testing.TB, a *Artifacts) string {
	t.Helper()
	p := filepath.Join(a.Dir, fmt.Sprintf("keso-%s-%s.squashfs", a.Version, a.Arch))
	for _, f := range []string{p, p + ".sha256", p + ".sig", p + ".verity", p + ".verity.sig"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("release %s %s: %v (keso-build --sign-key writes the image, .sha256, .sig, .verity and .verity.sig)", a.Arch, a.Version, err)
		}
	}
	return p
}

// nodeConfig is the cloud-config of the upgrade test nodes: root SSH with
// the test's key and a short health gate (k3s must run 10 s without exiting,
// within 30 s).
const nodeConfig = `#cloud-config
hostname: %[2]s
ssh_authorized_keys:
  - %[1]s
keso:
  ssh:
    root_login: true
  upgrade:
    health_timeout: 30s
`

// testNode is one machine: its disk, seed and SSH key outlive the VMs
// started on it, as a real box outlives its reboots.
type testNode struct {
	t      testing.TB
	name   string
	arch   string
	disk   string
	seed   string
	port   int
	signer ssh.Signer
	boots  int
	vm     *qemu.VM
	fw     qemu.Firmware // "" or UEFI (raw disk, installed disk); UBoot (the Pi card on QEMU's virt machine)
	mem    int           // MiB; default qemu's
	held   bool          // the caller holds a VM slot for the node's whole life (qemu.TakeSlot)
}

// newNode writes a copy of the release's raw disk (grown to 4 GiB) and a
// NoCloud seed with nodeConfig; the node boots it through UEFI.
func newNode(t testing.TB, name string, rel *Artifacts) *testNode {
	t.Helper()
	return diskNode(t, name, rel, fmt.Sprintf("keso-%s.img", rel.Arch), qemu.UEFI)
}

// newCardNode is a node booting the release's Raspberry Pi card
// (keso-rpi-<arch>.img) through U-Boot on QEMU's virt machine: Debian's
// u-boot-qemu finds the card's boot.scr by distro boot, as the Pi's U-Boot
// does, and the card's initrd finds its slots by keso.mbr= on the virtio
// disk. Everything of the card's A/B path runs but the Pi's firmware and
// hardware (QEMU's raspi3b cannot run U-Boot, NOTES.md).
func newCardNode(t testing.TB, name string, rel *Artifacts) *testNode {
	t.Helper()
	return diskNode(t, name, rel, fmt.Sprintf("keso-rpi-%s.img", rel.Arch), qemu.UBoot)
}

func diskNode(t testing.TB, name string, rel *Artifacts, img string, fw qemu.Firmware) *testNode {
	t.Helper()
	signer, pub := sshKey(t)
	n := &testNode{t: t, name: name, arch: rel.Arch, signer: signer, port: freePort(t), fw: fw}
	n.disk = rawCopy(t, rel.file(t, img), 4<<30)
	n.seed = seed(t, fmt.Sprintf(nodeConfig, pub, name), "instance-id: "+name+"\n")
	return n
}

// rawCopy copies a raw disk image sparsely and grows it to size. A raw
// file, not a qcow2 overlay: what a killed QEMU leaves behind is then
// exactly the sectors it wrote, like a disk after a power cut.
func rawCopy(t testing.TB, src string, size int64) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.img")
	if b, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", src, err, b)
	}
	if err := os.Truncate(dst, size); err != nil {
		t.Fatal(err)
	}
	return dst
}

// start boots the node once (UEFI from its disk, the seed as a second
// disk, SSH forwarded). Each reboot of the guest ends QEMU (-no-reboot).
func (n *testNode) start(label string) *qemu.VM {
	n.t.Helper()
	n.boots++
	disks := []string{n.disk}
	if n.seed != "" {
		disks = append(disks, n.seed)
	}
	vm := qemu.Start(n.t, qemu.Config{LogDir: logDir(n.t), Name: fmt.Sprintf("%s-%02d-%s", n.name, n.boots, label),
		Arch: n.arch, Firmware: cmp.Or(n.fw, qemu.UEFI), Boot: "c", Disks: disks, MemMiB: n.mem, HeldSlot: n.held,
		Extra: []string{"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", n.port),
			"-device", "virtio-net-pci,netdev=n0"}})
	n.vm = vm
	return vm
}

// slotRE is the kernel's echo of its command line: which slot the
// bootloader chose for this boot.
var slotRE = regexp.MustCompile(`(?i)command line: [^\n]*keso\.slot=([ab])`)

// bootsUntil boots the node again and again until a boot of slot want
// reaches the agent's ready line, at most max boots. Boots of the other slot
// must end on their own (kernel panic, failed root, failed health gate:
// each a reboot). It returns the running VM and the slot of every boot.
func (n *testNode) bootsUntil(label, want string, max int) (*qemu.VM, []string) {
	n.t.Helper()
	var slots []string
	for i := 0; i < max; i++ {
		vm := n.start(label)
		m, _, err := vm.Expect(slotRE, 3*time.Minute)
		if err != nil {
			n.t.Fatalf("boot %d (%s): no kernel command line on the console: %v", n.boots, label, err)
		}
		slots = append(slots, m[1])
		if m[1] == want {
			if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
				n.t.Fatalf("boot %d (%s) of slot %s: %v", n.boots, label, want, err)
			}
			return vm, slots
		}
		select {
		case <-vm.Exited():
		case <-time.After(4 * time.Minute):
			n.t.Fatalf("boot %d (%s) of slot %s did not end within 4 min (booted so far: %v); console tail:\n%s",
				n.boots, label, m[1], slots, qemu.Tail(vm.Console(), 3000))
		}
		vm.Stop()
	}
	n.t.Fatalf("%d boots (%v) and slot %s never came up", max, slots, want)
	return nil, nil
}

// ssh logs in as root.
func (n *testNode) ssh() *ssh.Client {
	n.t.Helper()
	c, _ := dial(n.t, n.port, "root", n.signer)
	return c
}

// status reads `keso status --json` inside the guest, waiting until the
// upgrade part of it is filled in (the agent assesses the boot after k3s
// starts).
func (n *testNode) status(c *ssh.Client) status.Status {
	n.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var s status.Status
		out := run(n.t, c, "keso status --json")
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			n.t.Fatalf("keso status --json: %v\n%s", err, out)
		}
		if s.Upgrade != nil || time.Now().After(deadline) {
			return s
		}
		time.Sleep(2 * time.Second)
	}
}

// osRelease returns VERSION_ID from the guest's /etc/os-release.
func osRelease(t testing.TB, c *ssh.Client) string {
	out := run(t, c, "cat /etc/os-release")
	m := regexp.MustCompile(`(?m)^VERSION_ID="?([^"\n]*)"?$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("/etc/os-release has no VERSION_ID:\n%s", out)
	}
	return m[1]
}

// releaseServer serves release files on the host's loopback; the guest
// reaches it as http://10.0.2.2:PORT. Range requests work (http.ServeContent),
// so interrupted downloads resume. onBytes, when set, sees every chunk
// going out and may cut the transfer.
type releaseServer struct {
	GuestURL string
	files    map[string]string // URL path -> file

	mu     sync.Mutex
	served map[string]int64
	// onBytes sees each chunk before it goes out: the position in the
	// file it starts at (Range requests start later) and the file's size.
	onBytes func(path string, pos, size int64) (stop bool)
	// refuse, when set and true for a path, answers 503.
	refuse func(path string) bool
	// ranges are the byte ranges of each path that went out, per response.
	ranges map[string][][2]int64
}

func serveReleases(t testing.TB) *releaseServer {
	t.Helper()
	s := &releaseServer{files: map[string]string{}, served: map[string]int64{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.GuestURL = fmt.Sprintf("http://10.0.2.2:%d", ln.Addr().(*net.TCPAddr).Port)
	return s
}

// publish serves file (and its .sha256, .sig, .verity and .verity.sig
// when present) under dir/.
func (s *releaseServer) publish(dir, file string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := "/" + dir + "/" + filepath.Base(file)
	for _, ext := range []string{"", ".sha256", ".sig", ".verity", ".verity.sig"} {
		if _, err := os.Stat(file + ext); err == nil {
			s.files[p+ext] = file + ext
		}
	}
	return s.GuestURL + p
}

// setHook sets (or, with nil, clears) what is called before each piece
// of hookPiece bytes of a response goes out, with the position in the
// file: returning true cuts the connection there.
func (s *releaseServer) setHook(f func(path string, sent, size int64) bool) {
	s.mu.Lock()
	s.onBytes = f
	s.mu.Unlock()
}

func (s *releaseServer) sent(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

func (s *releaseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	file, ok := s.files[r.URL.Path]
	refuse := s.refuse
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if refuse != nil && refuse(r.URL.Path) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	f, err := os.Open(file)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, _ := f.Stat()
	var start int64
	fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
	cw := &countingWriter{ResponseWriter: w, s: s, path: r.URL.Path, pos: start, size: fi.Size()}
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
	if r.Method == http.MethodGet && cw.pos > start {
		s.mu.Lock()
		if s.ranges == nil {
			s.ranges = map[string][][2]int64{}
		}
		s.ranges[r.URL.Path] = append(s.ranges[r.URL.Path], [2]int64{start, cw.pos})
		s.mu.Unlock()
	}
}

// setRefuse sets (or, with nil, clears) the refusal rule.
func (s *releaseServer) setRefuse(f func(path string) bool) {
	s.mu.Lock()
	s.refuse = f
	s.mu.Unlock()
}

// servedRanges returns the byte ranges of path that went out, in order.
func (s *releaseServer) servedRanges(path string) [][2]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]int64(nil), s.ranges[path]...)
}

type countingWriter struct {
	http.ResponseWriter
	s    *releaseServer
	path string
	pos  int64
	size int64
}

// hookPiece is how many bytes go out between two calls of the hook: the
// grain of a test's cuts and pauses.
const hookPiece = 8 << 10

func (c *countingWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := c.writePiece(b[:min(len(b), hookPiece)])
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func (c *countingWriter) writePiece(b []byte) (int, error) {
	c.s.mu.Lock()
	hook := c.s.onBytes
	c.s.mu.Unlock()
	if hook != nil && hook(c.path, c.pos, c.size) {
		return 0, io.ErrClosedPipe
	}
	n, err := c.ResponseWriter.Write(b)
	// Out to the socket now: a byte counted as sent is never one that a
	// cut connection drops from the server's buffer.
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	c.pos += int64(n)
	c.s.mu.Lock()
	c.s.served[c.path] += int64(n)
	c.s.mu.Unlock()
	return n, err
}

// guestRun runs cmd in the guest and returns its output and exit status
// (-1 when the session broke, as when the VM is killed under it).
func guestRun(c *ssh.Client, cmd string) (string, int) {
	s, err := c.NewSession()
	if err != nil {
		return err.Error(), -1
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err == nil {
		return string(out), 0
	}
	if e, ok := err.(*ssh.ExitError); ok {
		return string(out), e.ExitStatus()
	}
	return string(out) + err.Error(), -1
}

// partHash hashes the first mib MiB of a guest block device.
func partHash(t testing.TB, c *ssh.Client, dev string, mib int) string {
	t.Helper()
	out := run(t, c, fmt.Sprintf("dd if=%s bs=1M count=%d 2>/dev/null | shasum -a 256", dev, mib))
	if f := strings.Fields(out); len(f) > 0 && len(f[0]) == 64 {
		return f[0]
	}
	t.Fatalf("hash %s: %q", dev, out)
	return ""
}

func sha256Hex(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
