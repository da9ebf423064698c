package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
	"github.com/vishvananda/netns"
	"golang.org/x/crypto/ssh"
)

// metaNet is a network namespace that plays a cloud's link-local
// metadata service for one VM: a bridge holding 169.254.169.254 (GCP,
// Hetzner, DigitalOcean, Vultr) and 169.254.42.42 (Scaleway), a Go HTTP
// server listening there, dnsmasq handing the VM 169.254.10.50, and the
// VM's tap. Nothing outside the namespace is touched.
type metaNet struct {
	ns  string
	dir string
}

const (
	metaGuestIP  = "169.254.10.50"
	metaGuestMAC = "52:54:00:e2:ed:50"
)

func newMetaNet(t *testing.T, name string) *metaNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP (loud): the metadata-service test needs root for a network namespace and a tap")
	}
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
		t.Fatalf("/usr/sbin/dnsmasq missing: scripts/deps.sh installs it (dnsmasq-base)")
	}
	n := &metaNet{ns: fmt.Sprintf("keso-md-%s-%d", name, os.Getpid()%100000), dir: t.TempDir()}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns).Run() })
	for _, c := range [][]string{
		{"netns", "add", n.ns},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", n.ns, "link", "add", "br0", "type", "bridge"},
		{"-n", n.ns, "addr", "add", "169.254.0.1/16", "dev", "br0"},
		{"-n", n.ns, "addr", "add", "169.254.169.254/16", "dev", "br0"},
		{"-n", n.ns, "addr", "add", "169.254.42.42/16", "dev", "br0"},
		{"-n", n.ns, "link", "set", "br0", "up"},
		{"-n", n.ns, "tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"-n", n.ns, "link", "set", "tap0", "master", "br0", "up"},
	} {
		if b, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(c, " "), err, b)
		}
	}
	startInNS(t, n.ns, filepath.Join(n.dir, "dnsmasq.log"), "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=br0", "--bind-interfaces", "--dhcp-range=169.254.10.10,169.254.10.99,255.255.0.0,1h",
		"--dhcp-host="+metaGuestMAC+","+metaGuestIP, "--dhcp-leasefile="+filepath.Join(n.dir, "leases"),
		"--user=root", "--log-dhcp", "--pid-file=")
	return n
}

// inNS runs f on a thread in the namespace: sockets f creates stay there.
func (n *metaNet) inNS(t *testing.T, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (and so discarded) if switching back
		// fails: it must not run other goroutines in the namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		ns, err := netns.GetFromName(n.ns)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("back to the host namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// metaRequest is one request the fake service saw.
type metaRequest struct {
	Addr, Path string
	Status     int
}

// serve answers at addr ("169.254.169.254:80") with h, recording requests.
func (n *metaNet) serve(t *testing.T, addr string, h http.Handler, log *[]metaRequest, mu *sync.Mutex) {
	t.Helper()
	var ln net.Listener
	n.inNS(t, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r)
		mu.Lock()
		*log = append(*log, metaRequest{Addr: addr, Path: r.URL.RequestURI(), Status: rw.status})
		mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// provider is a cloud's metadata service as the provider documents it:
// the paths it answers, and a check each request must pass.
type provider struct {
	name, addr string
	files      map[string]string
	check      func(r *http.Request) int // an HTTP status to refuse with, or 0
}

func (p provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.check != nil {
		if code := p.check(r); code != 0 {
			http.Error(w, http.StatusText(code), code)
			return
		}
	}
	body, ok := p.files[r.URL.RequestURI()]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if p.name == "gcp" {
		w.Header().Set("Metadata-Flavor", "Google")
	}
	w.Write([]byte(body))
}

// cloudProviders answers each provider's documented paths with a host
// name, an instance id, the test's key and a user-data that writes a file.
func cloudProviders(pub string) []provider {
	ud := func(name string) string {
		return fmt.Sprintf("#cloud-config\nwrite_files:\n  - path: /etc/keso-e2e/ds\n    content: \"user-data from %s\\n\"\n", name)
	}
	keysJSON, _ := json.Marshal([]string{pub})
	conf, _ := json.Marshal(map[string]any{"id": "e2e-scw-1", "hostname": "e2e-scaleway", "ssh_public_keys": []map[string]string{{"key": pub, "fingerprint": "x"}}})
	g := "/computeMetadata/v1/"
	return []provider{
		{name: "gcp", addr: "169.254.169.254:80", files: map[string]string{
			g + "instance/hostname":             "e2e-gcp.c.keso-test.internal",
			g + "instance/id":                   "4242424242",
			g + "instance/attributes/ssh-keys":  "rancher:" + pub,
			g + "instance/attributes/user-data": ud("gcp"),
		}, check: func(r *http.Request) int {
			// GCP refuses a request without the header, as a guard
			// against SSRF.
			if r.Header.Get("Metadata-Flavor") != "Google" {
				return http.StatusForbidden
			}
			return 0
		}},
		{name: "hetzner", addr: "169.254.169.254:80", files: map[string]string{
			"/hetzner/v1/metadata/hostname":    "e2e-hetzner",
			"/hetzner/v1/metadata/instance-id": "4711",
			"/hetzner/v1/metadata/public-keys": string(keysJSON),
			"/hetzner/v1/userdata":             ud("hetzner"),
		}},
		{name: "digitalocean", addr: "169.254.169.254:80", files: map[string]string{
			"/metadata/v1/hostname":    "e2e-digitalocean",
			"/metadata/v1/id":          "314159",
			"/metadata/v1/public-keys": pub + "\n",
			"/metadata/v1/user-data":   ud("digitalocean"),
		}},
		{name: "vultr", addr: "169.254.169.254:80", files: map[string]string{
			"/v1/hostname":      "e2e-vultr",
			"/v1/instanceid":    "vultr-e2e-1",
			"/v1/public-keys":   pub + "\n",
			"/latest/user-data": ud("vultr"),
		}},
		{name: "scaleway", addr: "169.254.42.42:80", files: map[string]string{
			"/conf?format=json":     string(conf),
			"/user_data/cloud-init": ud("scaleway"),
		}, check: func(r *http.Request) int {
			// Scaleway serves user data only to a privileged source port.
			_, port, _ := net.SplitHostPort(r.RemoteAddr)
			if p, _ := strconv.Atoi(port); strings.HasPrefix(r.URL.Path, "/user_data") && p >= 1024 {
				return http.StatusForbidden
			}
			return 0
		}},
	}
}

// TestCloudDatasources boots the amd64 disk once per cloud k3OS lists
// (gcp, hetzner, digitalocean, vultr, scaleway) with only
// k3os.data_sources naming it, on a link where that provider's metadata
// service answers at its real address as the provider does; then logs in
// over SSH with the key the metadata gave and checks the host name and the
// user-data's file. The first case also lists a cloud that is not there
// (GCP on Hetzner): it is passed over at once and the next one used.
// Packet (Equinix Metal) is left to its unit tests: its service is an
// HTTPS host name, which a guest cannot trust here.
func TestCloudDatasources(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "amd64")
	signer, pub := sshKey(t)
	nbDir := filepath.Dir(a.file(t, "netboot/boot.ipxe"))
	provs := cloudProviders(pub)
	byName := map[string]provider{}
	for _, p := range provs {
		byName[p.name] = p
	}
	cases := []struct {
		name     string
		sources  string // k3os.data_sources on the command line
		serve    string // the provider that answers
		hostname string
	}{
		{"hetzner-after-gcp", "gcp,hetzner", "hetzner", "e2e-hetzner"},
		{"gcp", "gcp", "gcp", "e2e-gcp"},
		{"digitalocean", "digitalocean", "digitalocean", "e2e-digitalocean"},
		{"vultr", "vultr", "vultr", "e2e-vultr"},
		{"scaleway", "scaleway", "scaleway", "e2e-scaleway"},
	}
	for _, tc := range cases {
		// The name makes the test's temp paths, which QEMU's -drive
		// option parser must not see a comma in.
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newMetaNet(t, tc.serve)
			var mu sync.Mutex
			var reqs []metaRequest
			p := byName[tc.serve]
			n.serve(t, p.addr, p, &reqs, &mu)
			vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "ds-" + tc.serve, Arch: "amd64", Firmware: qemu.Direct,
				Kernel: filepath.Join(nbDir, "vmlinuz"), Initrd: filepath.Join(nbDir, "initrd"),
				Disks:  []string{overlayDisk(t, a.file(t, "keso-amd64.img"), 0)},
				Append: "console=ttyS0,115200 panic=10 keso.slot=a k3os.data_sources=" + tc.sources,
				Tap:    "tap0", MAC: metaGuestMAC, NetNS: n.ns})
			if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
				t.Fatalf("agent never said ready: %v", err)
			}
			c := n.sshDial(t, "rancher", signer)
			defer c.Close()
			if got := strings.TrimSpace(run(t, c, "hostname")); got != tc.hostname {
				t.Errorf("hostname = %q, want %q (the metadata's)", got, tc.hostname)
			}
			if got, want := run(t, c, "cat /etc/keso-e2e/ds"), "user-data from "+tc.serve+"\n"; got != want {
				t.Errorf("/etc/keso-e2e/ds = %q, want %q", got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			// 404 is the services' answer for a value an instance does not
			// have (GCP's optional attributes, another cloud's paths); 403
			// is a request made the wrong way (no Metadata-Flavor header,
			// Scaleway's user data from an unprivileged port).
			var refused []string
			for _, r := range reqs {
				if r.Status == http.StatusForbidden || r.Status >= 500 {
					refused = append(refused, fmt.Sprintf("%s %s: %d", r.Addr, r.Path, r.Status))
				}
			}
			if len(refused) > 0 {
				t.Errorf("the service refused requests the node made: %s", strings.Join(refused, "; "))
			}
			vm.Stop()
		})
	}
}

// sshDial logs in to the VM from inside the namespace, retrying while the
// guest's SSH server starts.
func (n *metaNet) sshDial(t *testing.T, user string, signer ssh.Signer) *ssh.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	addr := net.JoinHostPort(metaGuestIP, "22")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var conn net.Conn
		n.inNS(t, func() (err error) {
			conn, err = net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				conn = nil
			}
			return nil
		})
		if conn != nil {
			cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
			if err == nil {
				return ssh.NewClient(cc, chans, reqs)
			}
			conn.Close()
			if time.Now().After(deadline) {
				t.Fatalf("ssh %s@%s: %v", user, addr, err)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("ssh %s@%s: no TCP connection within 3 minutes", user, addr)
		}
		time.Sleep(2 * time.Second)
	}
}
