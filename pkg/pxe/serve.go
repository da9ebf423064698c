package pxe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Serve answers requests on iface until ctx is done, then returns nil. It
// listens on 0.0.0.0:67 and, in Proxy mode, 0.0.0.0:4011, both bound to
// iface (needs root or CAP_NET_BIND_SERVICE + CAP_NET_RAW). Each request
// gives one Event to events (which may be nil; calls are not concurrent),
// including malformed packets, which are logged and skipped.
//
// Where a reply goes: to the relay (giaddr:67) if there is one; to the
// client's address and source port if the request has ciaddr set (the
// port-4011 exchange, renewals); otherwise broadcast to 255.255.255.255:68,
// since a client without an address cannot be reached by unicast without
// an ARP entry. A reply leaves from the port its request came to: iPXE
// drops a ProxyDHCP ACK that does not come from port 4011.
func (s *Server) Serve(ctx context.Context, iface string, events func(Event)) error {
	var emu sync.Mutex
	emit := func(e Event) {
		if events != nil {
			emu.Lock()
			defer emu.Unlock()
			events(e)
		}
	}
	ports := []int{s.dhcpPort}
	if s.c.Mode == Proxy {
		ports = append(ports, s.proxyPort)
	}
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, p := range ports {
		c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: p})
		if err != nil {
			closeAll()
			return fmt.Errorf("pxe: listen on %s port %d: %w", iface, p, err)
		}
		conns = append(conns, c)
	}

	errs := make(chan error, len(conns))
	for i, c := range conns {
		go func() { errs <- s.serveConn(ctx, c, ports[i], emit) }()
	}
	var first error
	got := 0
	select {
	case <-ctx.Done():
	case first = <-errs:
		got++
	}
	closeAll()
	for ; got < len(conns); got++ {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return first
}

// serveConn reads requests from one socket until it is closed.
func (s *Server) serveConn(ctx context.Context, c *net.UDPConn, port int, emit func(Event)) error {
	buf := make([]byte, 65536)
	for {
		n, peer, err := c.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("pxe: read on port %d: %w", port, err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			emit(Event{Step: "dhcp", Detail: fmt.Sprintf("malformed packet from %v to port %d: %v", peer, port, err)})
			continue
		}
		if s.c.Mode == Proxy {
			mt := req.MessageType()
			if port == s.dhcpPort && mt != dhcpv4.MessageTypeDiscover ||
				port == s.proxyPort && mt != dhcpv4.MessageTypeRequest {
				// A REQUEST on 67 is for the site's server; a DISCOVER on 4011 is no PXE exchange.
				continue
			}
		}
		reply, ev := s.Answer(req)
		emit(ev)
		if reply == nil {
			continue
		}
		to := replyAddr(req, reply, peer)
		if _, err := c.WriteToUDP(reply.ToBytes(), to); err != nil {
			emit(Event{MAC: ev.MAC, Arch: ev.Arch, Step: "dhcp", UUID: ev.UUID,
				Detail: fmt.Sprintf("send %v to %v: %v", reply.MessageType(), to, err)})
		}
	}
}

// replyAddr says where a reply goes (see Serve).
func replyAddr(req, reply *dhcpv4.DHCPv4, peer *net.UDPAddr) *net.UDPAddr {
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: dhcpv4.ServerPort}
	}
	if reply.MessageType() != dhcpv4.MessageTypeNak {
		if ci := req.ClientIPAddr.To4(); ci != nil && !ci.IsUnspecified() {
			port := dhcpv4.ClientPort
			if peer != nil && peer.Port != 0 {
				port = peer.Port
			}
			return &net.UDPAddr{IP: ci, Port: port}
		}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
