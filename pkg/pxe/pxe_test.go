package pxe

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var captured = []string{
	"edk2-discover.bin",
	"edk2-request-4011.bin",
	"edk2-request-site.bin",
	"ipxe-efi-discover.bin",
	"ipxe-lkrn-discover.bin",
	"ipxe-rom-bios-discover.bin",
	"ipxe-rom-bios-request.bin",
}

func loadRaw(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t testing.TB, name string) *dhcpv4.DHCPv4 {
	t.Helper()
	req, err := dhcpv4.FromBytes(loadRaw(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return req
}

func proxyConfig() Config {
	return Config{
		Mode:      Proxy,
		ServerIP:  net.IPv4(10, 77, 0, 1),
		ScriptURL: "http://10.77.0.1:8080/ipxe",
		HTTPBase:  "http://10.77.0.1:8080",
	}
}

func fullConfig() Config {
	c := proxyConfig()
	c.Mode = Full
	c.RangeStart, c.RangeEnd = net.IPv4(10, 77, 0, 50), net.IPv4(10, 77, 0, 59)
	c.Netmask = net.CIDRMask(24, 32)
	c.Router = net.IPv4(10, 77, 0, 254)
	c.DNS = []net.IP{net.IPv4(10, 77, 0, 53)}
	c.LeaseTime = 2 * time.Hour
	return c
}

func newServer(t testing.TB, c Config) *Server {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reply is what a test checks in an answer; zero strings mean "absent".
type reply struct {
	typ       dhcpv4.MessageType
	yiaddr    string
	siaddr    string
	file      string // header field
	opt43     bool
	opt54     string
	opt60     string
	opt66     string
	opt67     string
	broadcast bool
}

func summarize(r *dhcpv4.DHCPv4) reply {
	got := reply{
		typ:       r.MessageType(),
		yiaddr:    r.YourIPAddr.String(),
		siaddr:    r.ServerIPAddr.String(),
		file:      r.BootFileName,
		opt43:     r.Options.Has(dhcpv4.OptionVendorSpecificInformation),
		opt60:     r.ClassIdentifier(),
		opt66:     r.TFTPServerName(),
		opt67:     r.BootFileNameOption(),
		broadcast: r.IsBroadcast(),
	}
	if sid := r.ServerIdentifier(); sid != nil {
		got.opt54 = sid.String()
	}
	return got
}

func TestAnswerCaptured(t *testing.T) {
	const script = "http://10.77.0.1:8080/ipxe"
	tests := []struct {
		file   string
		mode   Mode
		want   *reply // nil: silent
		arch   Arch
		detail string
	}{
		{"ipxe-rom-bios-discover.bin", Proxy,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "0.0.0.0", siaddr: "10.77.0.1", file: script,
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt67: script},
			ArchBIOS, "proxy offer: ipxe script"},
		{"ipxe-lkrn-discover.bin", Proxy,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "0.0.0.0", siaddr: "10.77.0.1", file: script,
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt67: script},
			ArchBIOS, "proxy offer: ipxe script"},
		{"ipxe-efi-discover.bin", Proxy,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "0.0.0.0", siaddr: "10.77.0.1", file: script,
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt67: script},
			ArchAMD64EFI, "proxy offer: ipxe script"},
		{"edk2-discover.bin", Proxy,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "0.0.0.0", siaddr: "10.77.0.1", file: "snponly.efi",
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt66: "10.77.0.1", opt67: "snponly.efi", broadcast: true},
			ArchAMD64EFI, "proxy offer: snponly.efi"},
		{"edk2-request-4011.bin", Proxy,
			&reply{typ: dhcpv4.MessageTypeAck, yiaddr: "0.0.0.0", siaddr: "10.77.0.1", file: "snponly.efi",
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt66: "10.77.0.1", opt67: "snponly.efi"},
			ArchAMD64EFI, "proxy ack: snponly.efi"},
		// The REQUEST during DORA is the site server's business.
		{"edk2-request-site.bin", Proxy, nil, "", "REQUEST without ciaddr"},
		{"ipxe-rom-bios-request.bin", Proxy, nil, "", "REQUEST without ciaddr"},

		{"ipxe-rom-bios-discover.bin", Full,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "10.77.0.50", siaddr: "10.77.0.1", file: script,
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt67: script},
			ArchBIOS, "offer 10.77.0.50: ipxe script"},
		{"edk2-discover.bin", Full,
			&reply{typ: dhcpv4.MessageTypeOffer, yiaddr: "10.77.0.50", siaddr: "10.77.0.1", file: "snponly.efi",
				opt43: true, opt54: "10.77.0.1", opt60: "PXEClient", opt66: "10.77.0.1", opt67: "snponly.efi", broadcast: true},
			ArchAMD64EFI, "offer 10.77.0.50: snponly.efi"},
		// Its own server id is the site's (10.77.0.2): the client chose another server.
		{"edk2-request-site.bin", Full, nil, "", "client chose server 10.77.0.2"},
		// Asks for slirp's 10.0.2.15 from server 10.0.2.2.
		{"ipxe-rom-bios-request.bin", Full, nil, "", "client chose server 10.0.2.2"},
		// ciaddr 10.77.0.111 is outside the range: NAK.
		{"edk2-request-4011.bin", Full,
			&reply{typ: dhcpv4.MessageTypeNak, yiaddr: "0.0.0.0", siaddr: "0.0.0.0", opt54: "10.77.0.1", broadcast: true},
			"", "nak 10.77.0.111: outside 10.77.0.50-10.77.0.59"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String()+"/"+tt.file, func(t *testing.T) {
			c := proxyConfig()
			if tt.mode == Full {
				c = fullConfig()
			}
			s := newServer(t, c)
			req := load(t, tt.file)
			got, ev := s.Answer(req)
			if !strings.Contains(ev.Detail, tt.detail) {
				t.Errorf("Detail = %q, want it to contain %q", ev.Detail, tt.detail)
			}
			if ev.Arch != tt.arch {
				t.Errorf("Arch = %q, want %q", ev.Arch, tt.arch)
			}
			if ev.UUID != "01234567-89ab-cdef-0123-456789abcdef" {
				t.Errorf("UUID = %q, want QEMU's -uuid", ev.UUID)
			}
			if !bytes.Equal(ev.MAC, net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}) {
				t.Errorf("MAC = %v", ev.MAC)
			}
			if tt.want == nil {
				if got != nil {
					t.Fatalf("got a reply, want silence:\n%v", got.Summary())
				}
				return
			}
			if got == nil {
				t.Fatalf("got silence (%s), want a reply", ev.Detail)
			}
			if g := summarize(got); g != *tt.want {
				t.Errorf("reply\n got %+v\nwant %+v", g, *tt.want)
			}
			if got.OpCode != dhcpv4.OpcodeBootReply || got.TransactionID != req.TransactionID ||
				!bytes.Equal(got.ClientHWAddr, req.ClientHWAddr) {
				t.Errorf("op %v xid %v chaddr %v, want BootReply %v %v", got.OpCode, got.TransactionID,
					got.ClientHWAddr, req.TransactionID, req.ClientHWAddr)
			}
			if tt.want.opt43 && !bytes.Equal(got.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte{6, 1, 8, 255}) {
				t.Errorf("option 43 = % x, want 06 01 08 ff", got.Options.Get(dhcpv4.OptionVendorSpecificInformation))
			}
			if tt.want.typ != dhcpv4.MessageTypeNak {
				if u := got.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(u, req.Options.Get(dhcpv4.OptionClientMachineIdentifier)) {
					t.Errorf("option 97 = % x, want the client's echoed", u)
				}
			}
			// What goes on the wire parses back the same.
			back, err := dhcpv4.FromBytes(got.ToBytes())
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if g := summarize(back); g != *tt.want {
				t.Errorf("reply after the wire\n got %+v\nwant %+v", g, *tt.want)
			}
		})
	}
}

func TestAnswerFullOptions(t *testing.T) {
	s := newServer(t, fullConfig())
	req := load(t, "edk2-discover.bin")
	got, _ := s.Answer(req)
	if got == nil {
		t.Fatal("no offer")
	}
	if m := net.IP(got.SubnetMask()).String(); m != "255.255.255.0" {
		t.Errorf("mask %v", m)
	}
	if r := got.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 77, 0, 254)) {
		t.Errorf("router %v", r)
	}
	if d := got.DNS(); len(d) != 1 || !d[0].Equal(net.IPv4(10, 77, 0, 53)) {
		t.Errorf("dns %v", d)
	}
	if lt := got.IPAddressLeaseTime(0); lt != 2*time.Hour {
		t.Errorf("lease time %v", lt)
	}

	// A plain (non-PXE) client gets a lease and no boot fields.
	plain := load(t, "edk2-discover.bin")
	plain.ClientHWAddr = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	plain.Options.Del(dhcpv4.OptionClassIdentifier)
	got, ev := s.Answer(plain)
	if got == nil {
		t.Fatalf("plain client: silence (%s)", ev.Detail)
	}
	if g := summarize(got); g.file != "" || g.opt67 != "" || g.opt43 || g.opt60 != "" || g.siaddr != "0.0.0.0" || g.yiaddr != "10.77.0.51" {
		t.Errorf("plain client got %+v", g)
	}
	if ev.Detail != "offer 10.77.0.51" {
		t.Errorf("Detail %q", ev.Detail)
	}
}

// discover, request, release build full-mode requests for one MAC.
func msg(t *testing.T, typ dhcpv4.MessageType, mac byte, requested net.IP) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, mac})}
	if requested != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(requested)))
	}
	if typ == dhcpv4.MessageTypeRequest {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))))
	}
	if typ == dhcpv4.MessageTypeRelease {
		mods = append(mods, dhcpv4.WithClientIP(requested))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFullLeases(t *testing.T) {
	c := fullConfig()
	c.RangeStart, c.RangeEnd = net.IPv4(10, 77, 0, 253), net.IPv4(10, 77, 0, 255) // .254 is the router
	s := newServer(t, c)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }

	steps := []struct {
		name   string
		req    *dhcpv4.DHCPv4
		at     time.Duration // since start
		typ    dhcpv4.MessageType
		yiaddr string
		detail string
	}{
		{"a discovers", msg(t, dhcpv4.MessageTypeDiscover, 1, nil), 0, dhcpv4.MessageTypeOffer, "10.77.0.253", "offer 10.77.0.253"},
		{"a discovers again: same address", msg(t, dhcpv4.MessageTypeDiscover, 1, nil), 0, dhcpv4.MessageTypeOffer, "10.77.0.253", "offer 10.77.0.253"},
		{"b discovers: the router is skipped", msg(t, dhcpv4.MessageTypeDiscover, 2, nil), 0, dhcpv4.MessageTypeOffer, "10.77.0.255", "offer 10.77.0.255"},
		{"c discovers: range exhausted", msg(t, dhcpv4.MessageTypeDiscover, 3, nil), 0, 0, "", "no offer: no free address in the range (10.77.0.253-10.77.0.255)"},
		{"c requests a's address", msg(t, dhcpv4.MessageTypeRequest, 3, net.IPv4(10, 77, 0, 253)), 0, dhcpv4.MessageTypeNak, "0.0.0.0", "nak 10.77.0.253: held by another client"},
		{"c requests the router's address", msg(t, dhcpv4.MessageTypeRequest, 3, net.IPv4(10, 77, 0, 254)), 0, dhcpv4.MessageTypeNak, "0.0.0.0", "nak 10.77.0.254: outside"},
		{"c requests outside the range", msg(t, dhcpv4.MessageTypeRequest, 3, net.IPv4(192, 168, 1, 9)), 0, dhcpv4.MessageTypeNak, "0.0.0.0", "nak 192.168.1.9: outside 10.77.0.253-10.77.0.255"},
		{"a requests", msg(t, dhcpv4.MessageTypeRequest, 1, net.IPv4(10, 77, 0, 253)), 0, dhcpv4.MessageTypeAck, "10.77.0.253", "lease 10.77.0.253"},
		{"b's offer lapses, c gets it", msg(t, dhcpv4.MessageTypeDiscover, 3, nil), 2 * time.Minute, dhcpv4.MessageTypeOffer, "10.77.0.255", "offer 10.77.0.255"},
		{"a still holds its lease", msg(t, dhcpv4.MessageTypeDiscover, 2, nil), 2 * time.Minute, 0, "", "no offer"},
		{"a releases", msg(t, dhcpv4.MessageTypeRelease, 1, net.IPv4(10, 77, 0, 253)), 2 * time.Minute, 0, "", "released 10.77.0.253"},
		{"b gets a's old address", msg(t, dhcpv4.MessageTypeDiscover, 2, nil), 2 * time.Minute, dhcpv4.MessageTypeOffer, "10.77.0.253", "offer 10.77.0.253"},
		{"b asks for it", msg(t, dhcpv4.MessageTypeRequest, 2, net.IPv4(10, 77, 0, 253)), 2 * time.Minute, dhcpv4.MessageTypeAck, "10.77.0.253", "lease 10.77.0.253"},
		{"after b's lease ends, a gets it", msg(t, dhcpv4.MessageTypeDiscover, 1, net.IPv4(10, 77, 0, 253)), 3 * time.Hour, dhcpv4.MessageTypeOffer, "10.77.0.253", "offer 10.77.0.253"},
	}
	start := now
	for _, st := range steps {
		now = start.Add(st.at)
		got, ev := s.Answer(st.req)
		if !strings.Contains(ev.Detail, st.detail) {
			t.Errorf("%s: Detail = %q, want it to contain %q", st.name, ev.Detail, st.detail)
		}
		if st.typ == 0 {
			if got != nil {
				t.Errorf("%s: got %v, want silence", st.name, got.MessageType())
			}
			continue
		}
		if got == nil {
			t.Errorf("%s: silence, want %v", st.name, st.typ)
			continue
		}
		if got.MessageType() != st.typ || got.YourIPAddr.String() != st.yiaddr {
			t.Errorf("%s: got %v %v, want %v %v", st.name, got.MessageType(), got.YourIPAddr, st.typ, st.yiaddr)
		}
	}
}

func TestAnswerBadInput(t *testing.T) {
	edit := func(name string, f func(*dhcpv4.DHCPv4)) *dhcpv4.DHCPv4 {
		req := load(t, name)
		f(req)
		return req
	}
	arch := func(code byte) func(*dhcpv4.DHCPv4) {
		return func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, code}))
		}
	}
	tests := []struct {
		name   string
		mode   Mode
		req    *dhcpv4.DHCPv4
		want   dhcpv4.MessageType // 0: silent
		detail string
	}{
		{"no option 93", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.Options.Del(dhcpv4.OptionClientSystemArchitectureType)
		}), 0, "no answer: no client architecture (option 93)"},
		{"short option 93", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}))
		}), 0, "no client architecture"},
		{"x86 UEFI 32-bit (6)", Proxy, edit("edk2-discover.bin", arch(6)), 0,
			"no answer: client architecture 6 (option 93) is not one keso boots"},
		{"arm64 UEFI without an arm64 binary", Proxy, edit("edk2-discover.bin", arch(11)), 0,
			"no answer: arm64 UEFI PXE client but there is no arm64 ipxe.efi"},
		{"non-PXE client in proxy mode", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptClassIdentifier("MSFT 5.0"))
		}), 0, `ignored: not a network-boot client (vendor class "MSFT 5.0")`},
		{"no vendor class in proxy mode", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.Options.Del(dhcpv4.OptionClassIdentifier)
		}), 0, `ignored: not a network-boot client (vendor class "")`},
		{"reply instead of request", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.OpCode = dhcpv4.OpcodeBootReply
		}), 0, "ignored: op BootReply is not a request"},
		{"no chaddr", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.ClientHWAddr = nil
		}), 0, "ignored: no client hardware address"},
		{"INFORM in proxy mode", Proxy, edit("edk2-discover.bin", func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeInform))
		}), 0, "ignored: INFORM in proxy mode"},
		{"4011 REQUEST naming another server", Proxy, edit("edk2-request-4011.bin", func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 9)))
		}), 0, "ignored: REQUEST for server 10.77.0.9"},
		{"4011 REQUEST naming this server", Proxy, edit("edk2-request-4011.bin", func(r *dhcpv4.DHCPv4) {
			r.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1)))
		}), dhcpv4.MessageTypeAck, "proxy ack: snponly.efi"},
		{"unknown arch in full mode: lease, no boot file", Full, edit("edk2-discover.bin", arch(6)),
			dhcpv4.MessageTypeOffer, "offer 10.77.0.50, no boot file: client architecture 6"},
		{"REQUEST without an address in full mode", Full, edit("edk2-request-site.bin", func(r *dhcpv4.DHCPv4) {
			r.Options.Del(dhcpv4.OptionServerIdentifier)
			r.Options.Del(dhcpv4.OptionRequestedIPAddress)
		}), 0, "ignored: REQUEST names no address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := proxyConfig()
			if tt.mode == Full {
				c = fullConfig()
			}
			got, ev := newServer(t, c).Answer(tt.req)
			if !strings.Contains(ev.Detail, tt.detail) {
				t.Errorf("Detail = %q, want it to contain %q", ev.Detail, tt.detail)
			}
			switch {
			case tt.want == 0 && got != nil:
				t.Errorf("got %v, want silence", got.MessageType())
			case tt.want != 0 && got == nil:
				t.Errorf("got silence, want %v", tt.want)
			case got != nil && got.MessageType() != tt.want:
				t.Errorf("got %v, want %v", got.MessageType(), tt.want)
			}
		})
	}
}

func TestBootFor(t *testing.T) {
	c := proxyConfig()
	arm := proxyConfig()
	arm.HaveArm64EFI = true
	noHTTP := proxyConfig()
	noHTTP.HTTPBase = ""
	tests := []struct {
		name string
		c    Config
		cl   Client
		want Boot
		err  string
	}{
		{"bios", c, Client{VendorClass: "PXEClient:Arch:00000:UNDI:002001", ArchCode: 0},
			Boot{Arch: ArchBIOS, File: "undionly.kpxe", VendorClass: "PXEClient", What: "undionly.kpxe"}, ""},
		{"amd64 efi (7)", c, Client{VendorClass: "PXEClient", ArchCode: 7},
			Boot{Arch: ArchAMD64EFI, File: "snponly.efi", VendorClass: "PXEClient", What: "snponly.efi"}, ""},
		{"amd64 efi (9)", c, Client{VendorClass: "PXEClient", ArchCode: 9},
			Boot{Arch: ArchAMD64EFI, File: "snponly.efi", VendorClass: "PXEClient", What: "snponly.efi"}, ""},
		{"arm64 efi", arm, Client{VendorClass: "PXEClient", ArchCode: 11},
			Boot{Arch: ArchARM64EFI, File: "arm64/ipxe.efi", VendorClass: "PXEClient", What: "arm64/ipxe.efi"}, ""},
		{"arm64 efi without binary", c, Client{VendorClass: "PXEClient", ArchCode: 11},
			Boot{Arch: ArchARM64EFI}, "no arm64 ipxe.efi"},
		{"ipxe bios", c, Client{VendorClass: "PXEClient", ArchCode: 0, IPXE: true},
			Boot{Arch: ArchBIOS, File: "http://10.77.0.1:8080/ipxe", HTTP: true, VendorClass: "PXEClient", What: "ipxe script"}, ""},
		{"ipxe arm64 needs no arm64 binary", c, Client{VendorClass: "PXEClient", ArchCode: 11, IPXE: true},
			Boot{Arch: ArchARM64EFI, File: "http://10.77.0.1:8080/ipxe", HTTP: true, VendorClass: "PXEClient", What: "ipxe script"}, ""},
		{"amd64 http", c, Client{VendorClass: "HTTPClient:Arch:00016:UNDI:003000", ArchCode: 16},
			Boot{Arch: ArchAMD64EFIHTTP, File: "http://10.77.0.1:8080/ipxe/snponly.efi", HTTP: true, VendorClass: "HTTPClient",
				What: "http http://10.77.0.1:8080/ipxe/snponly.efi"}, ""},
		{"arm64 http", arm, Client{VendorClass: "HTTPClient:Arch:00019:UNDI:003000", ArchCode: 19},
			Boot{Arch: ArchARM64EFIHTTP, File: "http://10.77.0.1:8080/ipxe/arm64/ipxe.efi", HTTP: true, VendorClass: "HTTPClient",
				What: "http http://10.77.0.1:8080/ipxe/arm64/ipxe.efi"}, ""},
		{"arm64 http without binary", c, Client{VendorClass: "HTTPClient", ArchCode: 19},
			Boot{Arch: ArchARM64EFIHTTP}, "arm64 UEFI HTTP boot client but there is no arm64 ipxe.efi"},
		{"http without HTTPBase", noHTTP, Client{VendorClass: "HTTPClient", ArchCode: 16},
			Boot{Arch: ArchAMD64EFIHTTP}, "no HTTPBase"},
		{"HTTPClient with BIOS arch", c, Client{VendorClass: "HTTPClient", ArchCode: 0},
			Boot{Arch: ArchBIOS}, "cannot HTTP-boot a BIOS"},
		{"no arch", c, Client{VendorClass: "PXEClient", ArchCode: -1}, Boot{}, "no client architecture"},
		{"itanium", c, Client{VendorClass: "PXEClient", ArchCode: 2}, Boot{}, "client architecture 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.BootFor(tt.cl)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestClientOf(t *testing.T) {
	tests := []struct {
		file string
		want Client
	}{
		{"ipxe-rom-bios-discover.bin", Client{VendorClass: "PXEClient:Arch:00000:UNDI:002001", ArchCode: 0, IPXE: true}},
		{"ipxe-efi-discover.bin", Client{VendorClass: "PXEClient:Arch:00007:UNDI:003010", ArchCode: 7, IPXE: true}},
		{"edk2-discover.bin", Client{VendorClass: "PXEClient:Arch:00007:UNDI:003000", ArchCode: 7}},
	}
	for _, tt := range tests {
		if got := ClientOf(load(t, tt.file)); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.file, got, tt.want)
		}
	}
	// RFC 3004 form of the user class.
	req := load(t, "edk2-discover.bin")
	req.UpdateOption(dhcpv4.OptRFC3004UserClass([]string{"foo", "iPXE"}))
	if !ClientOf(req).IPXE {
		t.Errorf("RFC 3004 user class [foo iPXE] not seen as iPXE")
	}
}

func TestNew(t *testing.T) {
	mod := func(base Config, f func(*Config)) Config {
		f(&base)
		return base
	}
	tests := []struct {
		name string
		c    Config
		err  string
	}{
		{"proxy", proxyConfig(), ""},
		{"full", fullConfig(), ""},
		{"full, lease time defaults", mod(fullConfig(), func(c *Config) { c.LeaseTime = 0 }), ""},
		{"no server ip", mod(proxyConfig(), func(c *Config) { c.ServerIP = nil }), "ServerIP <nil>: need this server's IPv4 address"},
		{"ipv6 server ip", mod(proxyConfig(), func(c *Config) { c.ServerIP = net.ParseIP("fd00::1") }), "ServerIP fd00::1"},
		{"no script url", mod(proxyConfig(), func(c *Config) { c.ScriptURL = "" }), `ScriptURL "": want an http:// or https:// URL`},
		{"tftp script url", mod(proxyConfig(), func(c *Config) { c.ScriptURL = "tftp://x/y" }), "ScriptURL"},
		{"bad http base", mod(proxyConfig(), func(c *Config) { c.HTTPBase = "10.0.0.1:8080" }), "HTTPBase"},
		{"unknown mode", mod(proxyConfig(), func(c *Config) { c.Mode = 7 }), "unknown mode 7"},
		{"range in proxy mode", mod(proxyConfig(), func(c *Config) { c.RangeStart = net.IPv4(10, 77, 0, 9) }), "are for Full mode"},
		{"full without range", mod(fullConfig(), func(c *Config) { c.RangeEnd = nil }), "needs an IPv4 RangeStart and RangeEnd"},
		{"range backwards", mod(fullConfig(), func(c *Config) { c.RangeStart = net.IPv4(10, 77, 0, 200) }), "RangeStart 10.77.0.200 is after RangeEnd 10.77.0.59"},
		{"no netmask", mod(fullConfig(), func(c *Config) { c.Netmask = nil }), "needs an IPv4 Netmask"},
		{"bad netmask", mod(fullConfig(), func(c *Config) { c.Netmask = net.IPMask{255, 0, 255, 0} }), "not a valid IPv4 mask"},
		{"range outside subnet", mod(fullConfig(), func(c *Config) { c.RangeEnd = net.IPv4(10, 77, 1, 9) }), "not inside the server's subnet 10.77.0.0/24"},
		{"router outside subnet", mod(fullConfig(), func(c *Config) { c.Router = net.IPv4(10, 1, 1, 1) }), "Router 10.1.1.1"},
		{"ipv6 dns", mod(fullConfig(), func(c *Config) { c.DNS = []net.IP{net.ParseIP("fd00::53")} }), "DNS server fd00::53"},
		{"short lease", mod(fullConfig(), func(c *Config) { c.LeaseTime = time.Second }), "LeaseTime 1s: want at least a minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.c)
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestClientUUID(t *testing.T) {
	tests := []struct {
		opt  []byte
		want string
	}{
		{append([]byte{0}, 0x67, 0x45, 0x23, 0x01, 0xab, 0x89, 0xef, 0xcd, 1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef),
			"01234567-89ab-cdef-0123-456789abcdef"},
		{make([]byte, 17), ""},                       // all zero: QEMU without -uuid
		{[]byte{0, 1, 2}, ""},                        // short
		{append([]byte{1}, make([]byte, 16)...), ""}, // unknown type
	}
	for _, tt := range tests {
		req, _ := dhcpv4.New(dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, tt.opt))
		if got := clientUUID(req); got != tt.want {
			t.Errorf("clientUUID(% x) = %q, want %q", tt.opt, got, tt.want)
		}
	}
}

func TestReplyAddr(t *testing.T) {
	peer := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 111), Port: 4011}
	tests := []struct {
		name           string
		giaddr, ciaddr net.IP
		typ            dhcpv4.MessageType
		want           string
	}{
		{"no address: broadcast", nil, nil, dhcpv4.MessageTypeOffer, "255.255.255.255:68"},
		{"4011 request: back to the client's port", nil, net.IPv4(10, 77, 0, 111), dhcpv4.MessageTypeAck, "10.77.0.111:4011"},
		{"nak: broadcast", nil, net.IPv4(10, 77, 0, 111), dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"relay", net.IPv4(10, 9, 0, 1), nil, dhcpv4.MessageTypeOffer, "10.9.0.1:67"},
	}
	for _, tt := range tests {
		req, _ := dhcpv4.New(dhcpv4.WithGatewayIP(tt.giaddr), dhcpv4.WithClientIP(tt.ciaddr))
		rep, _ := dhcpv4.New(dhcpv4.WithMessageType(tt.typ))
		if got := replyAddr(req, rep, peer).String(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestAnswerHTTPClient edits EDK2's captured DISCOVER into what its
// HttpBootDxe sends (no QEMU run reached HTTP boot): the proxy OFFER must
// carry option 60 "HTTPClient" and the URL in option 67 and the file field,
// with no option 43 or 66 (HttpBootDxe wants yiaddr 0, "HTTPClient" and an
// http URI, and ignores the rest).
func TestAnswerHTTPClient(t *testing.T) {
	const url = "http://10.77.0.1:8080/ipxe/snponly.efi"
	req := load(t, "edk2-discover.bin")
	req.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003000"))
	req.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 16}))
	for _, mode := range []Mode{Proxy, Full} {
		c := proxyConfig()
		yiaddr := "0.0.0.0"
		if mode == Full {
			c, yiaddr = fullConfig(), "10.77.0.50"
		}
		got, ev := newServer(t, c).Answer(req)
		if got == nil {
			t.Fatalf("%v: silence (%s)", mode, ev.Detail)
		}
		want := reply{typ: dhcpv4.MessageTypeOffer, yiaddr: yiaddr, siaddr: "10.77.0.1", file: url,
			opt54: "10.77.0.1", opt60: "HTTPClient", opt67: url, broadcast: true}
		if g := summarize(got); g != want {
			t.Errorf("%v:\n got %+v\nwant %+v", mode, g, want)
		}
		if ev.Arch != ArchAMD64EFIHTTP || !strings.HasSuffix(ev.Detail, "http "+url) {
			t.Errorf("%v: event %v", mode, ev)
		}
	}
}
