package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetLink is one network interface as the network phase (pkg/netconf) sees
// it: enough to match config entries by name or MAC, to skip work already
// done, and to wait for a carrier.
type NetLink struct {
	Name  string
	Index int
	// MAC is the hardware address in lower case ("52:54:00:12:34:56"), or "".
	MAC string
	// Kind is netlink's link type: "device" for a physical NIC, "veth",
	// "dummy", "bond", "vlan", "bridge", "loopback" (for lo), …
	Kind string
	MTU  int
	// Master is the name of the bond (or bridge) this link is enslaved to.
	Master string
	// Up is the administrative state (IFF_UP).
	Up bool
	// Carrier is true when the lower layer is up (IFF_LOWER_UP).
	Carrier  bool
	Loopback bool
}

// Netlink configures links, addresses and routes through rtnetlink in one
// network namespace. NewNetlink works in the namespace keso-init runs in;
// NewNetlinkAt works in another one (tests create their own namespaces and
// never touch the host's links).
type Netlink struct {
	h    *netlink.Handle
	ns   netns.NsHandle
	inNS bool // ns is not the caller's namespace
}

// NewNetlink returns a Netlink for the current network namespace.
func NewNetlink() *Netlink { return &Netlink{h: &netlink.Handle{}} }

// NewNetlinkAt returns a Netlink for the namespace ns. The caller keeps
// ownership of ns; Close releases the netlink sockets.
func NewNetlinkAt(ns netns.NsHandle) (*Netlink, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in namespace %s: %w", ns, err)
	}
	return &Netlink{h: h, ns: ns, inNS: true}, nil
}

// Close releases the netlink sockets of a Netlink made by NewNetlinkAt.
func (n *Netlink) Close() {
	if n.inNS {
		n.h.Close()
	}
}

// do runs fn with the calling thread in n's namespace, for side effects
// that are not rtnetlink messages (sysctl files, DHCP sockets): the
// namespace of a socket or of a /proc/sys/net file is the one of the thread
// that opens it.
func (n *Netlink) do(fn func() error) error {
	if !n.inNS {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", n.ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine ends, so no other goroutine runs in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("return to network namespace %s: %w", orig, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (n *Netlink) linkList() ([]netlink.Link, error) {
	var err error
	for try := 0; try < 5; try++ {
		var ls []netlink.Link
		ls, err = n.h.LinkList()
		if err == nil {
			return ls, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list links: %w", err)
}

// Links lists every link, loopback included, in kernel (index) order.
func (n *Netlink) Links() ([]NetLink, error) {
	ls, err := n.linkList()
	if err != nil {
		return nil, err
	}
	byIndex := map[int]string{}
	for _, l := range ls {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	out := make([]NetLink, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		out = append(out, NetLink{
			Name:     a.Name,
			Index:    a.Index,
			MAC:      strings.ToLower(a.HardwareAddr.String()),
			Kind:     l.Type(),
			MTU:      a.MTU,
			Master:   byIndex[a.MasterIndex],
			Up:       a.Flags&net.FlagUp != 0,
			Carrier:  a.RawFlags&unix.IFF_LOWER_UP != 0,
			Loopback: a.Flags&net.FlagLoopback != 0,
		})
	}
	return out, nil
}

func (n *Netlink) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// SetUp sets the link administratively up.
func (n *Netlink) SetUp(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// SetDown sets the link administratively down.
func (n *Netlink) SetDown(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.h.LinkSetDown(l); err != nil {
		return fmt.Errorf("set link %s down: %w", name, err)
	}
	return nil
}

// SetMTU sets the link's MTU.
func (n *Netlink) SetMTU(name string, mtu int) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", mtu, name, err)
	}
	return nil
}

// CreateBond creates a bond link with the bonding mode (balance-rr,
// active-backup, 802.3ad, …) and the MII monitoring interval in ms. The
// kernel needs the bonding module.
func (n *Netlink) CreateBond(name, mode string, miimon int) error {
	b := netlink.NewLinkBond(netlink.LinkAttrs{Name: name})
	b.Mode = netlink.StringToBondMode(mode)
	if b.Mode == netlink.BOND_MODE_UNKNOWN {
		return fmt.Errorf("create bond %s: unknown mode %q", name, mode)
	}
	b.Miimon = miimon
	if err := n.h.LinkAdd(b); err != nil {
		return fmt.Errorf("create bond %s (mode %s): %w", name, mode, err)
	}
	return nil
}

// CreateVLAN creates the 802.1Q link name with id on top of parent. The
// kernel needs the 8021q module.
func (n *Netlink) CreateVLAN(name, parent string, id int) error {
	p, err := n.link(parent)
	if err != nil {
		return fmt.Errorf("create vlan %s: %w", name, err)
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index}, VlanId: id, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
	if err := n.h.LinkAdd(v); err != nil {
		return fmt.Errorf("create vlan %s (id %d on %s): %w", name, id, parent, err)
	}
	return nil
}

// SetMaster enslaves link to master (a bond). The bonding driver wants the
// link down first.
func (n *Netlink) SetMaster(name, master string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	m, err := n.link(master)
	if err != nil {
		return err
	}
	if err := n.h.LinkSetMasterByIndex(l, m.Attrs().Index); err != nil {
		return fmt.Errorf("enslave %s to %s: %w", name, master, err)
	}
	return nil
}

// linkAddr resolves a link by name and parses an address (CIDR) for it.
func (n *Netlink) linkAddr(name, cidr string) (netlink.Link, *netlink.Addr, error) {
	l, err := n.link(name)
	if err != nil {
		return nil, nil, err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return nil, nil, fmt.Errorf("address %s: %w", cidr, err)
	}
	return l, a, nil
}

// ReplaceAddr adds the address (CIDR) to the link, or refreshes it.
func (n *Netlink) ReplaceAddr(name, cidr string) error {
	l, a, err := n.linkAddr(name, cidr)
	if err != nil {
		return err
	}
	if err := n.h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", cidr, name, err)
	}
	return nil
}

// ReplaceRoute adds or replaces a route through the link. to is a CIDR or
// "default" (the family then follows via); via may be "" for a route on
// the link itself.
func (n *Netlink) ReplaceRoute(name, to, via string, metric int) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Priority: metric}
	if via != "" {
		if r.Gw = net.ParseIP(via); r.Gw == nil {
			return fmt.Errorf("route %s via %s on %s: bad gateway address", to, via, name)
		}
	}
	switch {
	case to == "default" || to == "":
		if r.Gw == nil {
			return fmt.Errorf("route %s on %s: a default route needs a gateway", to, name)
		}
		if r.Gw.To4() != nil {
			_, r.Dst, _ = net.ParseCIDR("0.0.0.0/0")
		} else {
			_, r.Dst, _ = net.ParseCIDR("::/0")
		}
	default:
		_, dst, err := net.ParseCIDR(to)
		if err != nil {
			return fmt.Errorf("route %s on %s: %w", to, name, err)
		}
		r.Dst = dst
	}
	if r.Gw == nil {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := n.h.RouteReplace(r); err != nil {
		if via != "" {
			return fmt.Errorf("add route %s via %s on %s: %w", to, via, name, err)
		}
		return fmt.Errorf("add route %s on %s: %w", to, name, err)
	}
	return nil
}

// SetIPv6RA turns the kernel's handling of IPv6 router advertisements
// (SLAAC) on or off for the link: accept_ra 2 (accept even when forwarding
// is on, as it is on a k3s node) and autoconf 1, or both 0.
func (n *Netlink) SetIPv6RA(name string, on bool) error {
	ra, auto := "0", "0"
	if on {
		ra, auto = "2", "1"
	}
	return n.do(func() error {
		dir := "/proc/sys/net/ipv6/conf/" + name
		if _, err := os.Stat(dir); err != nil {
			if !on && os.IsNotExist(err) {
				return nil // no IPv6 in this kernel: nothing to turn off
			}
			return fmt.Errorf("ipv6 router advertisements on %s: %w (is IPv6 enabled in the kernel?)", name, err)
		}
		for _, kv := range [][2]string{{"accept_ra", ra}, {"autoconf", auto}} {
			if err := os.WriteFile(dir+"/"+kv[0], []byte(kv[1]), 0o644); err != nil {
				return fmt.Errorf("write %s/%s: %w", dir, kv[0], err)
			}
		}
		return nil
	})
}

// DHCPOptions say what a DHCPv4 exchange sends and how the lease's routes
// are installed.
type DHCPOptions struct {
	// Metric of the routes from the lease (default route included).
	Metric int
	// Hostname is sent as option 12 (servers register it in DNS); "" sends none.
	Hostname string
}

// DHCPv4Lease is what a DHCPv4 server gave a link, already applied to it
// (address and routes). It does not write /etc/resolv.conf: the network
// phase merges DNS from every source, and the initrd's netboot writes the
// lease's.
type DHCPv4Lease struct {
	Link    string
	Address string // CIDR
	Router  string
	// Routes are the routes installed, "dst via gw" ("default via 10.0.2.2").
	Routes []string
	DNS    []string
	Search []string
	NTP    []string
	Server string
	// LeaseTime is how long the lease is valid from Obtained (0: the
	// server gave no time, treated as infinite).
	LeaseTime time.Duration
	Obtained  time.Time

	raw *nclient4.Lease // for renewals
}

func (o DHCPOptions) modifiers() []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
		dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList,
		dhcpv4.OptionClasslessStaticRoute, dhcpv4.OptionNTPServers)}
	if o.Hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(o.Hostname)))
	}
	return m
}

func (n *Netlink) dhcpClient(name string) (*nclient4.Client, error) {
	// The DHCP library draws transaction IDs from u-root's getrandom reader,
	// which busy-waits until the kernel's CRNG is ready; early in boot (the
	// initrd's netboot) on a machine without RDRAND or virtio-rng that
	// takes minutes. A transaction ID needs no cryptographic quality: let
	// it use /dev/urandom.
	os.Setenv("UROOT_NOHWRNG", "1")
	var c *nclient4.Client
	err := n.do(func() error {
		var err error
		// Per-try timeout 1s, doubling; ctx bounds the whole exchange.
		c, err = nclient4.New(name, nclient4.WithTimeout(time.Second), nclient4.WithRetry(8))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", name, err)
	}
	return c, nil
}

// DHCPv4 runs a DHCPv4 exchange on the (up) link until it gets a lease or
// ctx ends, then adds the address and the routes: the classless static
// routes (option 121) when offered, else a default route via the router,
// with opts.Metric.
func (n *Netlink) DHCPv4(ctx context.Context, name string, opts DHCPOptions) (DHCPv4Lease, error) {
	c, err := n.dhcpClient(name)
	if err != nil {
		return DHCPv4Lease{Link: name}, err
	}
	defer c.Close()
	l, err := c.Request(ctx, opts.modifiers()...)
	if err != nil {
		if ctx.Err() != nil {
			return DHCPv4Lease{Link: name}, fmt.Errorf("dhcp on %s: no lease: %w", name, ctx.Err())
		}
		return DHCPv4Lease{Link: name}, fmt.Errorf("dhcp on %s: %w", name, err)
	}
	return n.applyLease(name, l, "", opts)
}

// RenewDHCPv4 renews old (DHCPREQUEST to its server) and applies the
// answer; an address that changed replaces the old one.
func (n *Netlink) RenewDHCPv4(ctx context.Context, old DHCPv4Lease, opts DHCPOptions) (DHCPv4Lease, error) {
	if old.raw == nil {
		return old, fmt.Errorf("renew dhcp lease on %s: not a lease from this client", old.Link)
	}
	c, err := n.dhcpClient(old.Link)
	if err != nil {
		return old, err
	}
	defer c.Close()
	l, err := c.Renew(ctx, old.raw, opts.modifiers()...)
	if err != nil {
		return old, fmt.Errorf("renew dhcp lease %s on %s: %w", old.Address, old.Link, err)
	}
	return n.applyLease(old.Link, l, old.Address, opts)
}

// applyLease configures the link from an acknowledged lease.
func (n *Netlink) applyLease(name string, l *nclient4.Lease, oldAddr string, opts DHCPOptions) (DHCPv4Lease, error) {
	out := DHCPv4Lease{Link: name, raw: l, Obtained: time.Now()}
	ack := l.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	ipnet := &net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}
	out.Address = ipnet.String()
	if sid := ack.ServerIdentifier(); sid != nil {
		out.Server = sid.String()
	}
	out.LeaseTime = ack.IPAddressLeaseTime(0)
	if out.LeaseTime == 0xffffffff*time.Second {
		out.LeaseTime = 0 // RFC 2131: infinite
	}
	for _, d := range ack.DNS() {
		out.DNS = append(out.DNS, d.String())
	}
	for _, d := range ack.NTPServers() {
		out.NTP = append(out.NTP, d.String())
	}
	if dn := ack.DomainName(); dn != "" {
		out.Search = append(out.Search, dn)
	}
	if sl := ack.DomainSearch(); sl != nil {
		out.Search = append(out.Search, sl.Labels...)
	}
	if err := n.ReplaceAddr(name, out.Address); err != nil {
		return out, fmt.Errorf("dhcp on %s: %w", name, err)
	}
	if oldAddr != "" && oldAddr != out.Address {
		if err := n.DelAddr(name, oldAddr); err != nil {
			return out, fmt.Errorf("dhcp on %s: drop the old lease: %w", name, err)
		}
	}
	if routes := ack.ClasslessStaticRoute(); len(routes) > 0 {
		// RFC 3442: with option 121 the router option is ignored.
		for _, r := range routes {
			to, via := r.Dest.String(), ""
			if !r.Router.IsUnspecified() {
				via = r.Router.String()
			}
			if ones, _ := r.Dest.Mask.Size(); ones == 0 {
				to = "default"
				out.Router = via
			}
			if err := n.ReplaceRoute(name, to, via, opts.Metric); err != nil {
				return out, fmt.Errorf("dhcp on %s: %w", name, err)
			}
			out.Routes = append(out.Routes, strings.TrimSpace(to+" via "+via))
		}
	} else if rs := ack.Router(); len(rs) > 0 {
		out.Router = rs[0].String()
		if err := n.ReplaceRoute(name, "default", out.Router, opts.Metric); err != nil {
			return out, fmt.Errorf("dhcp on %s: %w", name, err)
		}
		out.Routes = append(out.Routes, "default via "+out.Router)
	}
	return out, nil
}

// DelAddr removes the address (CIDR) from the link.
func (n *Netlink) DelAddr(name, cidr string) error {
	l, a, err := n.linkAddr(name, cidr)
	if err != nil {
		return err
	}
	if err := n.h.AddrDel(l, a); err != nil {
		return fmt.Errorf("remove address %s from %s: %w", cidr, name, err)
	}
	return nil
}

// SetClock steps the system clock to t (settimeofday). The network phase's
// SNTP client (pkg/ntp) uses it before k3s starts.
func (Linux) SetClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("settimeofday %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}
