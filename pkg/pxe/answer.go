package pxe

import (
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// pxeVendorOptions is option 43 for PXE clients: PXE_DISCOVERY_CONTROL
// (sub-option 6) with bit 3 set, "boot the file in this packet, no menu and
// no boot server discovery" (PXE 2.1 table 2-1), then the end tag. It makes
// EDK2 treat a proxy offer as a PXE10 offer and boot from it without a
// port 4011 round trip.
var pxeVendorOptions = []byte{6, 1, 8, 255}

// Answer decides the reply to one request. A nil reply means stay silent;
// Event.Detail then says why. It is pure apart from the lease table (Full
// mode).
//
// Proxy mode answers a network-boot client's DISCOVER with an OFFER and its
// REQUEST with an ACK, both with yiaddr 0.0.0.0. Only a REQUEST that has
// ciaddr set and names this server or no server in option 54 is answered:
// that is the PXE port-4011 request (EDK2 sends no option 54, iPXE sends
// this server's); a REQUEST during the client's normal DORA is for the
// site's DHCP server. Serve hands REQUESTs only from port 4011 and
// DISCOVERs only from port 67 to Answer in Proxy mode.
//
// Full mode hands out leases: DISCOVER → OFFER, REQUEST → ACK, or NAK when
// the address is outside the range or held by another MAC, RELEASE and
// DECLINE update the table, INFORM → ACK without an address.
func (s *Server) Answer(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Event) {
	ev := Event{MAC: req.ClientHWAddr, Step: "dhcp", UUID: clientUUID(req)}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		ev.Detail = fmt.Sprintf("ignored: op %v is not a request", req.OpCode)
		return nil, ev
	}
	if len(req.ClientHWAddr) == 0 {
		ev.Detail = "ignored: no client hardware address"
		return nil, ev
	}
	cl := ClientOf(req)
	if s.c.Mode == Proxy {
		return s.answerProxy(req, cl, ev)
	}
	return s.answerFull(req, cl, ev)
}

func (s *Server) answerProxy(req *dhcpv4.DHCPv4, cl Client, ev Event) (*dhcpv4.DHCPv4, Event) {
	if !cl.PXE() {
		ev.Detail = fmt.Sprintf("ignored: not a network-boot client (vendor class %q)", cl.VendorClass)
		return nil, ev
	}
	var typ dhcpv4.MessageType
	switch mt := req.MessageType(); mt {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if req.ClientIPAddr.To4() == nil || req.ClientIPAddr.IsUnspecified() {
			ev.Detail = "ignored: REQUEST without ciaddr is for the site's DHCP server"
			return nil, ev
		}
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(s.c.ServerIP) {
			ev.Detail = fmt.Sprintf("ignored: REQUEST for server %v", sid)
			return nil, ev
		}
		typ = dhcpv4.MessageTypeAck
	default:
		ev.Detail = fmt.Sprintf("ignored: %v in proxy mode", mt)
		return nil, ev
	}
	boot, err := s.c.BootFor(cl)
	ev.Arch = boot.Arch
	if err != nil {
		ev.Detail = "no answer: " + err.Error()
		return nil, ev
	}
	reply, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithClientIP(req.ClientIPAddr),
		dhcpv4.WithServerIP(s.c.ServerIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.c.ServerIP)),
	)
	if err != nil {
		ev.Detail = "no answer: " + err.Error()
		return nil, ev
	}
	s.addBoot(reply, req, boot)
	name := "offer"
	if typ == dhcpv4.MessageTypeAck {
		name = "ack"
	}
	ev.Detail = fmt.Sprintf("proxy %s: %s", name, boot.What)
	return reply, ev
}

// addBoot puts a boot answer into a reply: siaddr, file and option 67,
// option 66 for TFTP, option 60, option 43 for PXE clients, and option 97
// echoed (the PXE spec has proxy replies carry the client's UUID).
func (s *Server) addBoot(reply, req *dhcpv4.DHCPv4, b Boot) {
	reply.ServerIPAddr = s.c.ServerIP
	if len(b.File) < 128 {
		reply.BootFileName = b.File
	}
	reply.UpdateOption(dhcpv4.OptBootFileName(b.File))
	if !b.HTTP {
		reply.UpdateOption(dhcpv4.OptTFTPServerName(s.c.ServerIP.String()))
	}
	reply.UpdateOption(dhcpv4.OptClassIdentifier(b.VendorClass))
	if b.VendorClass == VendorPXE {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions))
	}
	if v := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); v != nil {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, v))
	}
}

func (s *Server) answerFull(req *dhcpv4.DHCPv4, cl Client, ev Event) (*dhcpv4.DHCPv4, Event) {
	mac := req.ClientHWAddr.String()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()

	var (
		typ  dhcpv4.MessageType
		ip   net.IP
		verb string
	)
	switch mt := req.MessageType(); mt {
	case dhcpv4.MessageTypeDiscover:
		var err error
		ip, err = s.offer(mac, req.RequestedIPAddress(), now)
		if err != nil {
			ev.Detail = fmt.Sprintf("no offer: %v (%v-%v)", err, s.c.RangeStart, s.c.RangeEnd)
			return nil, ev
		}
		typ, verb = dhcpv4.MessageTypeOffer, "offer"
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(s.c.ServerIP) {
			s.release(mac, nil)
			ev.Detail = fmt.Sprintf("ignored: client chose server %v", sid)
			return nil, ev
		}
		ip = req.RequestedIPAddress()
		if ip == nil {
			ip = req.ClientIPAddr
		}
		if ip.To4() == nil || ip.IsUnspecified() {
			ev.Detail = "ignored: REQUEST names no address"
			return nil, ev
		}
		if why := s.refuse(mac, ip, now); why != "" {
			ev.Detail = fmt.Sprintf("nak %v: %s", ip, why)
			return s.nak(req, ev)
		}
		s.bind(mac, ipUint(ip), now.Add(s.c.LeaseTime))
		typ, verb = dhcpv4.MessageTypeAck, "lease"
	case dhcpv4.MessageTypeRelease:
		s.release(mac, req.ClientIPAddr)
		ev.Detail = fmt.Sprintf("released %v", req.ClientIPAddr)
		return nil, ev
	case dhcpv4.MessageTypeDecline:
		if ip := req.RequestedIPAddress(); ip != nil && s.inRange(ip) {
			s.release(mac, nil)
			s.bind("", ipUint(ip), now.Add(s.c.LeaseTime))
			ev.Detail = fmt.Sprintf("declined %v: held back for %v", ip, s.c.LeaseTime)
		} else {
			ev.Detail = fmt.Sprintf("ignored: DECLINE of %v", ip)
		}
		return nil, ev
	case dhcpv4.MessageTypeInform:
		typ, verb = dhcpv4.MessageTypeAck, "inform"
	default:
		ev.Detail = fmt.Sprintf("ignored: %v", mt)
		return nil, ev
	}

	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.c.ServerIP)),
		dhcpv4.WithNetmask(s.c.Netmask),
	}
	if typ == dhcpv4.MessageTypeAck && verb == "inform" {
		mods = append(mods, dhcpv4.WithClientIP(req.ClientIPAddr), dhcpv4.WithYourIP(net.IPv4zero))
	} else {
		mods = append(mods, dhcpv4.WithYourIP(ip),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(s.c.LeaseTime)))
	}
	if s.c.Router != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(s.c.Router)))
	}
	if len(s.c.DNS) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(s.c.DNS...)))
	}
	reply, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		ev.Detail = "no answer: " + err.Error()
		return nil, ev
	}
	what := verb
	if ip != nil {
		what = fmt.Sprintf("%s %v", verb, ip)
	}
	if cl.PXE() {
		boot, err := s.c.BootFor(cl)
		ev.Arch = boot.Arch
		if err != nil {
			ev.Detail = fmt.Sprintf("%s, no boot file: %v", what, err)
			return reply, ev
		}
		s.addBoot(reply, req, boot)
		what += ": " + boot.What
	}
	ev.Detail = what
	return reply, ev
}

// refuse says why ip cannot be leased to mac, or "" when it can.
func (s *Server) refuse(mac string, ip net.IP, now time.Time) string {
	if !s.inRange(ip) {
		return fmt.Sprintf("outside %v-%v", s.c.RangeStart, s.c.RangeEnd)
	}
	if !s.freeFor(ipUint(ip), mac, now) {
		return "held by another client"
	}
	return ""
}

// nak builds a DHCPNAK: broadcast, no addresses, only the server id.
func (s *Server) nak(req *dhcpv4.DHCPv4, ev Event) (*dhcpv4.DHCPv4, Event) {
	reply, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.c.ServerIP)),
		dhcpv4.WithBroadcast(true),
	)
	if err != nil {
		ev.Detail += ", no answer: " + err.Error()
		return nil, ev
	}
	return reply, ev
}

// clientUUID formats option 97 (type 0 and 16 bytes) as a UUID string, or
// "" when absent, malformed or all zero. The bytes come in SMBIOS order
// (first three fields little-endian; QEMU's -uuid 01234567-89ab-cdef-…
// arrives as 67 45 23 01 ab 89 ef cd …), and are printed as dmidecode does.
func clientUUID(req *dhcpv4.DHCPv4) string {
	v := req.Options.Get(dhcpv4.OptionClientMachineIdentifier)
	if len(v) != 17 || v[0] != 0 {
		return ""
	}
	b := v[1:]
	zero := true
	for _, c := range b {
		if c != 0 {
			zero = false
		}
	}
	if zero {
		return ""
	}
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:16])
}
