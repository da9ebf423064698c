package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// Link is a network interface as the initrd sees it.
type Link struct {
	Name    string
	Carrier bool
}

// Links lists the non-loopback network interfaces in kernel order.
func (Linux) Links() ([]Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []Link
	for _, l := range ls {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.EncapType == "loopback" {
			continue
		}
		out = append(out, Link{Name: a.Name, Carrier: a.OperState == netlink.OperUp || readCarrier(a.Name)})
	}
	return out, nil
}

func readCarrier(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/carrier")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// LinkUp sets the interface administratively up (and lo, which Go's
// resolver and local servers expect).
func (Linux) LinkUp(name string) error {
	for _, n := range []string{"lo", name} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			return fmt.Errorf("link %s: %w", n, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set link %s up: %w", n, err)
		}
	}
	return nil
}

// Lease is what a DHCPv4 server gave us, already applied to the link.
type Lease struct {
	Link    string
	Address string // CIDR
	Router  string
	DNS     []string
	Server  string
}

// DHCP asks for a DHCPv4 lease on the link, then configures the address,
// the default route and /etc/resolv.conf from it.
func (Linux) DHCP(ctx context.Context, link string, timeout time.Duration) (*Lease, error) {
	// The DHCP library draws transaction IDs from u-root's getrandom reader,
	// which busy-waits until the kernel's CRNG is ready; early in boot on a
	// machine without RDRAND or virtio-rng that takes minutes. A
	// transaction ID needs no cryptographic quality: let it use /dev/urandom.
	os.Setenv("UROOT_NOHWRNG", "1")
	c, err := nclient4.New(link, nclient4.WithTimeout(timeout), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", link, err)
	}
	defer c.Close()
	l, err := c.Request(ctx)
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", link, err)
	}
	ack := l.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	ipnet := &net.IPNet{IP: ack.YourIPAddr, Mask: mask}
	out := &Lease{Link: link, Address: ipnet.String(), Server: ack.ServerIPAddr.String()}
	nl, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", link, err)
	}
	if err := netlink.AddrReplace(nl, &netlink.Addr{IPNet: ipnet}); err != nil {
		return nil, fmt.Errorf("add address %s to %s: %w", ipnet, link, err)
	}
	if rs := ack.Router(); len(rs) > 0 {
		out.Router = rs[0].String()
		r := &netlink.Route{LinkIndex: nl.Attrs().Index, Gw: rs[0]}
		if err := netlink.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("add default route via %s on %s: %w", rs[0], link, err)
		}
	}
	var resolv strings.Builder
	for _, d := range ack.DNS() {
		out.DNS = append(out.DNS, d.String())
		fmt.Fprintf(&resolv, "nameserver %s\n", d)
	}
	if dn := ack.DomainName(); dn != "" {
		fmt.Fprintf(&resolv, "search %s\n", dn)
	}
	if resolv.Len() > 0 {
		_ = os.MkdirAll("/etc", 0o755)
		if err := os.WriteFile("/etc/resolv.conf", []byte(resolv.String()), 0o644); err != nil {
			return nil, fmt.Errorf("write /etc/resolv.conf: %w", err)
		}
	}
	return out, nil
}
