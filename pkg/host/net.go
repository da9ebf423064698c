package host

import (
	"context"
	"os"
	"strings"
	"time"
)

// Link is a network interface as the initrd sees it.
type Link struct {
	Name    string
	Carrier bool
}

// Links lists the non-loopback network interfaces in kernel order: the
// initrd's view of Netlink.Links.
func (Linux) Links() ([]Link, error) {
	ls, err := NewNetlink().Links()
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, l := range ls {
		if l.Loopback {
			continue
		}
		out = append(out, Link{Name: l.Name, Carrier: l.Carrier || readCarrier(l.Name)})
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
	nl := NewNetlink()
	for _, n := range []string{"lo", name} {
		if err := nl.SetUp(n); err != nil {
			return err
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
	Search  []string
	Server  string
}

// DHCP is the initrd's DHCPv4: Netlink.DHCPv4 (the one DHCP client) on
// link for as long as three tries of timeout, applying the address and
// routes. Like the agent's, it leaves /etc/resolv.conf to its caller.
func (Linux) DHCP(ctx context.Context, link string, timeout time.Duration) (*Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*timeout)
	defer cancel()
	l, err := NewNetlink().DHCPv4(ctx, link, DHCPOptions{})
	if err != nil {
		return nil, err
	}
	return &Lease{Link: l.Link, Address: l.Address, Router: l.Router, DNS: l.DNS, Search: l.Search, Server: l.Server}, nil
}
