package netconf

// Real-kernel tests: each builds its own network namespaces with veth
// links, applies a plan through the real host.Netlink, and reads the
// result back with netlink (and `ip -d link`). Nothing touches the host's
// own interfaces, and no packet leaves the namespaces the test created.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var nsCounter atomic.Int32

// testNS is a network namespace made for one test.
type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates a named network namespace (visible to `ip -n NAME`),
// removed when the test ends. It skips, loudly, without root or netns.
func newNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: creating network namespaces needs root (CI runs as root)")
	}
	name := fmt.Sprintf("keso-t%d-%d", os.Getpid(), nsCounter.Add(1))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("SKIP: network namespaces unsupported here: %v", err)
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("return to the test's network namespace: %v", serr) // thread stays locked: discarded
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Skipf("SKIP: cannot create a network namespace: %v", err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return &testNS{name: name, ns: ns, h: h}
}

// veth creates a veth pair a (here) <-> b (in peer, or here when nil) and
// sets b up so that a gets a carrier when it goes up.
func (n *testNS) veth(t *testing.T, a, b string, mac string, peer *testNS) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			t.Fatal(err)
		}
		v.HardwareAddr = hw
	}
	if peer != nil {
		v.PeerNamespace = netlink.NsFd(int(peer.ns))
	}
	if err := n.h.LinkAdd(v); err != nil {
		t.Fatalf("create veth %s/%s in %s: %v", a, b, n.name, err)
	}
	ph := n.h
	if peer != nil {
		ph = peer.h
	}
	l, err := ph.LinkByName(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// run runs fn with the thread inside the namespace (sysctl reads, sockets).
func (n *testNS) run(t *testing.T, fn func() error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		t.Fatal(err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return from %s: %v", n.name, err)
	}
	runtime.UnlockOSThread()
	if ferr != nil {
		t.Fatal(ferr)
	}
}

func (n *testNS) sysctl(t *testing.T, p string) string {
	var v []byte
	n.run(t, func() (err error) {
		v, err = os.ReadFile("/proc/sys/" + p)
		return err
	})
	return strings.TrimSpace(string(v))
}

func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s in %s: %v", name, n.name, err)
	}
	return l
}

func (n *testNS) addrs(t *testing.T, name string) []string {
	t.Helper()
	as, err := n.h.AddrList(n.link(t, name), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	return out
}

func (n *testNS) routes(t *testing.T, name string) []string {
	t.Helper()
	rs, err := n.h.RouteList(n.link(t, name), netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Gw == nil {
			continue // the kernel's own subnet routes
		}
		dst := "default"
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			dst = r.Dst.String()
		}
		out = append(out, fmt.Sprintf("%s via %s metric %d", dst, r.Gw, r.Priority))
	}
	return out
}

// ipLink returns `ip -d link show NAME` in the namespace, or skips the
// check (not the test) when iproute2 is missing.
func (n *testNS) ipLink(t *testing.T, name string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Logf("NOTE: iproute2 (ip) is not installed: the `ip -d link` cross-check is skipped")
		return "", false
	}
	out, err := exec.Command("ip", "-n", n.name, "-d", "link", "show", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s -d link show %s: %v\n%s", n.name, name, err, out)
	}
	t.Logf("ip -d link show %s:\n%s", name, out)
	return string(out), true
}

func runNetconf(t *testing.T, n *testNS, config string) (Result, phase.Report, string, time.Duration) {
	t.Helper()
	cfg := load(t, t.Name(), config)
	nl, err := host.NewNetlinkAt(n.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	root := t.TempDir()
	var console strings.Builder // the Recorder serialises its writes
	rec := phase.NewRecorder("network", &console, nil)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background()) // ends lease renewals
	t.Cleanup(cancel)
	res := Run(ctx, cfg, nl, nl, host.FS{Root: root}, rec)
	took := time.Since(start)
	<-res.Background
	t.Logf("console:\n%s", console.String())
	b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	return res, rec.Done(), string(b), took
}

func TestKernelStatic(t *testing.T) {
	n := newNS(t)
	n.veth(t, "eth0", "peer0", "", nil)
	n.veth(t, "eth1", "peer1", "52:54:00:ab:cd:02", nil)
	config := `keso:
  dns_nameservers: [192.168.10.1, 1.1.1.1]
  network:
    wait_online: 10s
    interfaces:
      - name: eth0
        addresses: [192.168.10.20/24, "fd00:10::20/64"]
        gateway: 192.168.10.1
        dns: [192.168.10.1, 192.168.10.2]
        ipv6_ra: true
      - mac: "52:54:00:AB:CD:02"
        addresses: [172.16.5.20/24]
        routes:
          - {to: 172.16.0.0/12, via: 172.16.5.1, metric: 20}
        mtu: 9000
`
	res, rep, resolv, took := runNetconf(t, n, config)
	t.Logf("applied in %s", took)
	diffLines(t, "failures", failures(rep), nil)
	diffLines(t, "offline", res.Offline, nil)
	diffLines(t, "eth0 addresses", n.addrs(t, "eth0"), []string{"192.168.10.20/24", "fd00:10::20/64"})
	diffLines(t, "eth1 addresses", n.addrs(t, "eth1"), []string{"172.16.5.20/24"})
	diffLines(t, "eth0 routes", n.routes(t, "eth0"), []string{"default via 192.168.10.1 metric 0"})
	diffLines(t, "eth1 routes", n.routes(t, "eth1"), []string{"172.16.0.0/12 via 172.16.5.1 metric 20"})
	if got := n.link(t, "eth1").Attrs().MTU; got != 9000 {
		t.Errorf("eth1 mtu: got %d, want 9000", got)
	}
	for _, l := range []string{"lo", "eth0", "eth1"} {
		if n.link(t, l).Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", l)
		}
	}
	for _, c := range []struct{ key, want string }{
		{"net/ipv6/conf/eth0/accept_ra", "2"}, {"net/ipv6/conf/eth0/autoconf", "1"},
		{"net/ipv6/conf/eth1/accept_ra", "0"}, {"net/ipv6/conf/eth1/autoconf", "0"},
	} {
		if got := n.sysctl(t, c.key); got != c.want {
			t.Errorf("%s: got %s, want %s", c.key, got, c.want)
		}
	}
	if want := "# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\nnameserver 192.168.10.1\nnameserver 1.1.1.1\nnameserver 192.168.10.2\n"; resolv != want {
		t.Errorf("resolv.conf:\ngot  %q\nwant %q", resolv, want)
	}
	if out, ok := n.ipLink(t, "eth1"); ok && !strings.Contains(out, "mtu 9000") {
		t.Errorf("ip -d link show eth1 lacks mtu 9000:\n%s", out)
	}

	// Applying the same config again is idempotent: no failure, same state.
	_, rep, _, _ = runNetconf(t, n, config)
	diffLines(t, "failures on re-apply", failures(rep), nil)
	diffLines(t, "eth0 addresses after re-apply", n.addrs(t, "eth0"), []string{"192.168.10.20/24", "fd00:10::20/64"})
}

// supports reports whether the kernel can create links of kind (bonding,
// 8021q): probed in a namespace of its own.
func supports(t *testing.T, kind string) error {
	n := newNS(t)
	n.veth(t, "probe0", "probe1", "", nil)
	var l netlink.Link
	switch kind {
	case "bond":
		l = netlink.NewLinkBond(netlink.LinkAttrs{Name: "bondprobe"})
	case "vlan":
		l = &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "vlanprobe", ParentIndex: n.link(t, "probe0").Attrs().Index}, VlanId: 2}
	}
	return n.h.LinkAdd(l)
}

// TestKernelBondVLAN creates a 802.3ad bond of two veth ends with a VLAN on
// top and a second VLAN on a plain link, as in config-examples 05 and 06.
func TestKernelBondVLAN(t *testing.T) {
	for _, kind := range []string{"bond", "vlan"} {
		if err := supports(t, kind); err != nil {
			t.Skipf("SKIP: this kernel cannot create %s links (%v): it lacks CONFIG_BONDING / CONFIG_VLAN_8021Q "+
				"(it runs inside the VM of TestQEMUKernel, on Debian's kernel)", kind, err)
		}
	}
	n := newNS(t)
	n.veth(t, "enp1s0f0", "sw0", "", nil)
	n.veth(t, "enp1s0f1", "sw1", "", nil)
	n.veth(t, "eth2", "sw2", "", nil)
	// A member that is up must be taken down before it is enslaved.
	if err := n.h.LinkSetUp(n.link(t, "enp1s0f0")); err != nil {
		t.Fatal(err)
	}
	config := `keso:
  network:
    wait_online: 10s
    interfaces:
      - {name: enp1s0f0, mtu: 9000}
      - {name: enp1s0f1, mtu: 9000}
    bonds:
      - name: bond0
        mode: 802.3ad
        interfaces: [enp1s0f0, enp1s0f1]
        miimon: 100
        mtu: 9000
        addresses: [10.0.0.5/24]
        gateway: 10.0.0.1
    vlans:
      - {link: bond0, id: 30, addresses: [10.30.0.5/24]}
      - {link: eth2, id: 40, name: pos, addresses: [10.40.0.5/24], optional: true}
`
	res, rep, _, took := runNetconf(t, n, config)
	t.Logf("applied in %s", took)
	diffLines(t, "failures", failures(rep), nil)
	diffLines(t, "offline", res.Offline, nil)

	bond, ok := n.link(t, "bond0").(*netlink.Bond)
	if !ok {
		t.Fatalf("bond0 is a %T, want *netlink.Bond", n.link(t, "bond0"))
	}
	if bond.Mode != netlink.BOND_MODE_802_3AD || bond.Miimon != 100 || bond.MTU != 9000 {
		t.Errorf("bond0: mode %s miimon %d mtu %d, want 802.3ad 100 9000", bond.Mode, bond.Miimon, bond.MTU)
	}
	for _, m := range []string{"enp1s0f0", "enp1s0f1"} {
		if got := n.link(t, m).Attrs().MasterIndex; got != bond.Index {
			t.Errorf("%s: master index %d, want bond0's %d", m, got, bond.Index)
		}
	}
	for name, want := range map[string]struct {
		parent string
		id     int
		addr   string
	}{"bond0.30": {"bond0", 30, "10.30.0.5/24"}, "pos": {"eth2", 40, "10.40.0.5/24"}} {
		v, ok := n.link(t, name).(*netlink.Vlan)
		if !ok {
			t.Errorf("%s is a %T, want *netlink.Vlan", name, n.link(t, name))
			continue
		}
		if v.VlanId != want.id || v.ParentIndex != n.link(t, want.parent).Attrs().Index {
			t.Errorf("%s: id %d parent %d, want id %d on %s", name, v.VlanId, v.ParentIndex, want.id, want.parent)
		}
		diffLines(t, name+" addresses", n.addrs(t, name), []string{want.addr})
	}
	diffLines(t, "bond0 addresses", n.addrs(t, "bond0"), []string{"10.0.0.5/24"})
	diffLines(t, "bond0 routes", n.routes(t, "bond0"), []string{"default via 10.0.0.1 metric 0"})
	if out, ok := n.ipLink(t, "bond0"); ok && !strings.Contains(out, "bond mode 802.3ad") {
		t.Errorf("ip -d link show bond0:\n%s", out)
	}
	if out, ok := n.ipLink(t, "pos"); ok && !strings.Contains(out, "vlan protocol 802.1Q id 40") {
		t.Errorf("ip -d link show pos:\n%s", out)
	}
}

// dhcpStats is what the test's DHCP server saw.
type dhcpStats struct {
	renewals  atomic.Int32 // REQUESTs from a client that has the address (ciaddr set)
	hostname  atomic.Value // option 12 of the last request
	leaseTime time.Duration
}

// dhcpServer answers DISCOVER and REQUEST on link in ns with lease ip/24,
// router .1 and two name servers.
func dhcpServer(t *testing.T, n *testNS, link string, ip net.IP, leaseTime time.Duration) *dhcpStats {
	st := &dhcpStats{leaseTime: leaseTime}
	t.Helper()
	srvIP := net.IPv4(ip[12], ip[13], ip[14], 1).To4()
	if err := n.h.AddrAdd(n.link(t, link), &netlink.Addr{IPNet: &net.IPNet{IP: srvIP, Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
			if !m.ClientIPAddr.IsUnspecified() {
				st.renewals.Add(1)
			}
		default:
			return
		}
		st.hostname.Store(m.HostName())
		r, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(ip),
			dhcpv4.WithServerIP(srvIP),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(srvIP)),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptRouter(srvIP)),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(ip[12], ip[13], ip[14], 53), net.IPv4(ip[12], ip[13], ip[14], 54))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("store.example")),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(st.leaseTime)),
		)
		if err != nil {
			t.Errorf("dhcp reply: %v", err)
			return
		}
		if _, err := conn.WriteTo(r.ToBytes(), peer); err != nil {
			t.Errorf("dhcp server send: %v", err)
		}
	}
	var srv *server4.Server
	n.run(t, func() (err error) {
		srv, err = server4.NewServer(link, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	})
	go func() {
		if err := srv.Serve(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.EBADF) {
			t.Logf("dhcp server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return st
}

// TestKernelDHCP: a real DHCPv4 exchange over a veth pair between two
// namespaces; a second link whose server never answers is reported within
// wait_online and does not stop the first, nor a static third link.
func TestKernelDHCP(t *testing.T) {
	client := newNS(t)
	server := newNS(t)
	client.veth(t, "eth0", "srv0", "", server)
	client.veth(t, "eth1", "deaf1", "", server) // nobody serves DHCP here
	client.veth(t, "eth2", "peer2", "", nil)
	for _, l := range []string{"srv0", "deaf1"} {
		if err := server.h.LinkSetUp(server.link(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	stats := dhcpServer(t, server, "srv0", net.IPv4(10, 77, 0, 50), 4*time.Second)
	config := `hostname: store-7
keso:
  dns_nameservers: [10.0.0.53]
  network:
    wait_online: 4s
    interfaces:
      - {name: eth0, dhcp: true}
      - {name: eth1, dhcp: true}
      - {name: eth2, addresses: [10.2.0.5/24], dns: [10.2.0.1]}
`
	res, rep, resolv, took := runNetconf(t, client, config)
	t.Logf("applied in %s", took)
	if took > 12*time.Second {
		t.Errorf("Apply took %s with wait_online 4s", took)
	}
	fs := failures(rep)
	if len(fs) != 1 || !strings.HasPrefix(fs[0], "keso.network.interfaces[1].dhcp: dhcp on eth1: no lease") {
		t.Errorf("failures: got %q, want one: eth1 without a lease", fs)
	}
	if len(res.Leases) != 1 || res.Leases[0].Address != "10.77.0.50/24" || res.Leases[0].Router != "10.77.0.1" {
		t.Errorf("leases: got %+v, want 10.77.0.50/24 via 10.77.0.1 on eth0", res.Leases)
	}
	diffLines(t, "eth0 addresses", client.addrs(t, "eth0"), []string{"10.77.0.50/24"})
	diffLines(t, "eth0 routes", client.routes(t, "eth0"), []string{"default via 10.77.0.1 metric 1024"})
	diffLines(t, "eth2 addresses", client.addrs(t, "eth2"), []string{"10.2.0.5/24"})
	want := "# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\n" +
		"nameserver 10.0.0.53\nnameserver 10.2.0.1\nnameserver 10.77.0.53\nnameserver 10.77.0.54\nsearch store.example\n"
	if resolv != want {
		t.Errorf("resolv.conf:\ngot  %q\nwant %q", resolv, want)
	}
	if got, _ := stats.hostname.Load().(string); got != "store-7" {
		t.Errorf("hostname sent to the DHCP server: %q, want store-7", got)
	}
	// The 4s lease is renewed after about 2s.
	deadline := time.Now().Add(6 * time.Second)
	for stats.renewals.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if stats.renewals.Load() == 0 {
		t.Errorf("the lease was not renewed within 6s (lease time 4s)")
	}
	diffLines(t, "eth0 addresses after renewal", client.addrs(t, "eth0"), []string{"10.77.0.50/24"})
}

// TestKernelAutoDHCP: with no network block, the first link with a
// carrier gets DHCP (eth0's peer is down, so eth0 has none).
func TestKernelAutoDHCP(t *testing.T) {
	client := newNS(t)
	server := newNS(t)
	client.veth(t, "eth0", "dead0", "", server)
	client.veth(t, "eth1", "srv1", "", server)
	if err := server.h.LinkSetDown(server.link(t, "dead0")); err != nil {
		t.Fatal(err)
	}
	if err := server.h.LinkSetUp(server.link(t, "srv1")); err != nil {
		t.Fatal(err)
	}
	dhcpServer(t, server, "srv1", net.IPv4(10, 88, 0, 7), time.Hour)
	res, rep, resolv, took := runNetconf(t, client, "hostname: auto\n")
	t.Logf("applied in %s", took)
	diffLines(t, "failures", failures(rep), nil)
	if len(res.Leases) != 1 || res.Leases[0].Link != "eth1" {
		t.Errorf("leases: got %+v, want one on eth1", res.Leases)
	}
	diffLines(t, "eth1 addresses", client.addrs(t, "eth1"), []string{"10.88.0.7/24"})
	if !strings.Contains(resolv, "nameserver 10.88.0.53\nnameserver 10.88.0.54\nsearch store.example\n") {
		t.Errorf("resolv.conf: %q", resolv)
	}
}
