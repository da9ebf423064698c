// Package pxe is the DHCP side of `keso netboot serve`: it answers the
// firmware of a rack's machines with the boot file that starts iPXE, and
// iPXE with the URL of its script.
//
// Two modes:
//
//   - Proxy (proxyDHCP, PXE spec 2.1) runs beside a site's own DHCP server:
//     it never hands out addresses (yiaddr is always 0.0.0.0) and answers
//     only network-boot clients (option 60 "PXEClient…" or "HTTPClient…"):
//     an OFFER to a DISCOVER on port 67, and an ACK to a REQUEST sent to port
//     4011. Everything else is ignored.
//   - Full is a plain DHCP server for an isolated rack network: an in-memory
//     lease table over a range (a MAC keeps its address while its lease
//     lives), subnet mask, router, DNS and lease time, plus the same boot
//     answer for network-boot clients.
//
// The decision is split from the doing: [Config.BootFor] is pure (client →
// boot file), [Server.Answer] builds the reply to one request (pure apart
// from the lease table), and [Server.Serve] only moves packets.
//
// What real clients needed, seen 2026-12-05 with QEMU 7.2 (TCG) in a
// network namespace: a bridge with QEMU's tap, this server in Proxy mode on
// the bridge, dnsmasq as the site's DHCP server (no PXE) behind a veth, and
// dnsmasq's TFTP and an HTTP server for the script (testdata/README.md
// lists the captured requests):
//
//   - iPXE, QEMU's virtio-net ROM under SeaBIOS (and ipxe.lkrn, and
//     ipxe.efi once loaded): option 60 "PXEClient:Arch:00000:UNDI:002001"
//     (00007/003010 for ipxe.efi), option 93, user class (option 77) "iPXE"
//     as raw bytes (not RFC 3004 form), option 97, broadcast flag not set.
//     It took the site's address and the proxy OFFER's file (the script
//     URL, with siaddr set) as they stood, and fetched the script: no
//     request to port 4011.
//   - EDK2 PxeBcDxe, OVMF_CODE_4M.fd with the NIC's iPXE option ROM off
//     (romfile=): option 60 "PXEClient:Arch:00007:UNDI:003000", option 93
//     = 7, option 97, broadcast flag set. With option 43 carrying
//     PXE_DISCOVERY_CONTROL (sub-option 6) bit 3 beside the boot file, the
//     proxy OFFER is a "PXE10" offer that EDK2 boots from directly: it
//     fetched ipxe.efi over TFTP from siaddr, with no port 4011 exchange.
//     Without option 43 (tried with a modified build) it is a "BINL" offer:
//     EDK2 sent a REQUEST from port 4011 to siaddr:4011 (ciaddr set, no
//     option 54, no user class) and booted from the ACK, which must come
//     back to port 4011. Proxy mode sends option 43 and answers 4011, so
//     both paths work. The chain went on: ipxe.efi's own DHCP got the
//     script URL and fetched it.
//   - Full mode, the same OVMF with no site server: OFFER/ACK of the first
//     address in the range with ipxe.efi, then ipxe.efi's DISCOVER/REQUEST
//     got the same address and the script URL.
//   - Not seen with a real client: a BIOS PXE ROM that is not iPXE
//     (undionly.kpxe; QEMU only has iPXE ROMs), arm64, and UEFI HTTP boot
//     ("HTTPClient", option 93 = 16/19); those answers are tested with
//     edited packets only.
//
// Both EDK2 and iPXE send option 97 in SMBIOS byte order (the first three
// UUID fields little-endian); Event.UUID undoes that, so it reads as
// QEMU's -uuid and dmidecode print it.
//
// Serve needs root (or CAP_NET_BIND_SERVICE and CAP_NET_RAW): it binds
// 0.0.0.0:67, and in Proxy mode 0.0.0.0:4011, to one interface
// (SO_BINDTODEVICE), so another DHCP server on the same host must not hold
// port 67 on that interface.
package pxe

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// Mode says whether the server hands out addresses.
type Mode int

const (
	// Proxy answers network-boot clients only and never hands out addresses.
	Proxy Mode = iota
	// Full is a DHCP server with its own lease range.
	Full
)

func (m Mode) String() string {
	switch m {
	case Proxy:
		return "proxy"
	case Full:
		return "full"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// DefaultLeaseTime is the lease time in Full mode when Config.LeaseTime is 0.
const DefaultLeaseTime = time.Hour

// Config is what the server answers with. New validates it.
type Config struct {
	Mode Mode
	// ServerIP is this server's IPv4 address on the rack network: siaddr
	// (next-server, where TFTP is), option 54 and option 66.
	ServerIP net.IP
	// ScriptURL is what iPXE chains to, e.g. http://10.0.0.1:8080/ipxe.
	// Required, http or https.
	ScriptURL string
	// HTTPBase is the base URL of the HTTP server for UEFI HTTP boot, e.g.
	// http://10.0.0.1:8080; clients get HTTPBase + "/ipxe/snponly.efi" (amd64). Empty
	// means UEFI HTTP boot clients get no answer.
	HTTPBase string
	// HaveArm64EFI says the TFTP root has arm64/ipxe.efi (and HTTPBase serves
	// /ipxe/arm64/ipxe.efi); without it arm64 UEFI clients get no answer.
	HaveArm64EFI bool

	// Full mode only (New rejects them in Proxy mode).

	// RangeStart and RangeEnd bound the addresses handed out, both
	// included; they must lie in ServerIP's subnet. ServerIP and Router are
	// never handed out even when inside the range.
	RangeStart, RangeEnd net.IP
	// Netmask is the rack subnet's mask (option 1). Required.
	Netmask net.IPMask
	// Router (option 3) and DNS (option 6) are optional.
	Router net.IP
	DNS    []net.IP
	// LeaseTime is option 51; 0 means DefaultLeaseTime.
	LeaseTime time.Duration
}

// Event says what the server did with one request (or why it stayed
// silent), for logs and for `keso netboot serve`'s progress per machine.
type Event struct {
	MAC  net.HardwareAddr
	Arch Arch   // empty when the client did not say or was not a network-boot client
	Step string // "dhcp"
	// Detail is one line: "proxy offer: undionly.kpxe", "lease 10.0.0.50:
	// ipxe script", "ignored: not a network-boot client", …
	Detail string
	// UUID is the client machine id from option 97, if sent, in the usual
	// text form of the SMBIOS UUID (as dmidecode prints it: the first three
	// fields are sent little-endian, as EDK2 and iPXE both do).
	UUID string
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Step, e.MAC)
	if e.Arch != "" {
		s += " " + string(e.Arch)
	}
	if e.UUID != "" {
		s += " uuid=" + e.UUID
	}
	return s + ": " + e.Detail
}

// Server answers DHCP requests for one rack network.
type Server struct {
	c Config

	// start and size describe the range in Full mode.
	start, size uint32

	mu     sync.Mutex
	leases map[string]*lease // by MAC (string of the hardware address)
	byIP   map[uint32]*lease

	now       func() time.Time // for tests
	dhcpPort  int              // 67 (tests use others)
	proxyPort int              // 4011
}

// New checks the config and returns a server for it.
func New(c Config) (*Server, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	c.ServerIP = c.ServerIP.To4()
	s := &Server{c: c, now: time.Now, dhcpPort: 67, proxyPort: 4011}
	if c.Mode == Full {
		s.c.RangeStart, s.c.RangeEnd = c.RangeStart.To4(), c.RangeEnd.To4()
		if s.c.LeaseTime == 0 {
			s.c.LeaseTime = DefaultLeaseTime
		}
		s.start = ipUint(s.c.RangeStart)
		s.size = ipUint(s.c.RangeEnd) - s.start + 1
		s.leases = map[string]*lease{}
		s.byIP = map[uint32]*lease{}
	}
	return s, nil
}

func (c *Config) validate() error {
	if c.Mode != Proxy && c.Mode != Full {
		return fmt.Errorf("unknown mode %d", int(c.Mode))
	}
	if ip := c.ServerIP.To4(); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("ServerIP %v: need this server's IPv4 address on the rack network", c.ServerIP)
	}
	if err := checkURL("ScriptURL", c.ScriptURL); err != nil {
		return err
	}
	if c.HTTPBase != "" {
		if err := checkURL("HTTPBase", c.HTTPBase); err != nil {
			return err
		}
	}
	if c.Mode == Proxy {
		if c.RangeStart != nil || c.RangeEnd != nil || c.Netmask != nil || c.Router != nil || c.DNS != nil || c.LeaseTime != 0 {
			return errors.New("RangeStart, RangeEnd, Netmask, Router, DNS and LeaseTime are for Full mode; Proxy mode hands out no addresses")
		}
		return nil
	}
	start, end := c.RangeStart.To4(), c.RangeEnd.To4()
	if start == nil || end == nil {
		return fmt.Errorf("full mode needs an IPv4 RangeStart and RangeEnd (got %v-%v)", c.RangeStart, c.RangeEnd)
	}
	if ipUint(start) > ipUint(end) {
		return fmt.Errorf("RangeStart %v is after RangeEnd %v", start, end)
	}
	if len(c.Netmask) != net.IPv4len {
		return fmt.Errorf("full mode needs an IPv4 Netmask (got %v)", c.Netmask)
	}
	if ones, bits := c.Netmask.Size(); bits == 0 || ones == 0 {
		return fmt.Errorf("Netmask %v is not a valid IPv4 mask", net.IP(c.Netmask))
	}
	subnet := &net.IPNet{IP: c.ServerIP.To4().Mask(c.Netmask), Mask: c.Netmask}
	if !subnet.Contains(start) || !subnet.Contains(end) {
		return fmt.Errorf("range %v-%v is not inside the server's subnet %v", start, end, subnet)
	}
	if c.Router != nil && (c.Router.To4() == nil || !subnet.Contains(c.Router)) {
		return fmt.Errorf("Router %v is not an IPv4 address in %v", c.Router, subnet)
	}
	for _, d := range c.DNS {
		if d.To4() == nil {
			return fmt.Errorf("DNS server %v is not an IPv4 address", d)
		}
	}
	if c.LeaseTime < 0 || (c.LeaseTime > 0 && c.LeaseTime < time.Minute) {
		return fmt.Errorf("LeaseTime %v: want at least a minute (0 means %v)", c.LeaseTime, DefaultLeaseTime)
	}
	if c.LeaseTime/time.Second > 0xffffffff {
		return fmt.Errorf("LeaseTime %v does not fit option 51", c.LeaseTime)
	}
	return nil
}

func checkURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s %q: %w", name, s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http:// or https:// URL", name, s)
	}
	return nil
}

func ipUint(ip net.IP) uint32 {
	ip = ip.To4()
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func uintIP(u uint32) net.IP {
	return net.IPv4(byte(u>>24), byte(u>>16), byte(u>>8), byte(u)).To4()
}
