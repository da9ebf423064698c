package pxe

import (
	"errors"
	"net"
	"time"
)

// offerHold is how long an address offered to a client stays reserved for
// it before its REQUEST.
const offerHold = time.Minute

// lease is one address held by one MAC: offered (until a REQUEST), bound,
// or declined (another host answered ARP for it; held by no MAC).
type lease struct {
	ip     uint32
	mac    string // "" for a declined address
	expiry time.Time
}

var errExhausted = errors.New("no free address in the range")

// inRange reports whether ip is one the server may hand out.
func (s *Server) inRange(ip net.IP) bool {
	ip4 := ip.To4()
	if ip4 == nil {
		return false
	}
	u := ipUint(ip4)
	return u-s.start < s.size && !s.reserved(u)
}

// reserved reports addresses in the range that are never handed out.
func (s *Server) reserved(u uint32) bool {
	if u == ipUint(s.c.ServerIP) {
		return true
	}
	return s.c.Router != nil && u == ipUint(s.c.Router)
}

// freeFor reports whether u can be given to mac now.
func (s *Server) freeFor(u uint32, mac string, now time.Time) bool {
	l := s.byIP[u]
	return l == nil || l.mac == mac || now.After(l.expiry)
}

// offer picks an address for mac: the one it holds, else the one it asks
// for if free, else the lowest free one. It holds it for offerHold unless
// the client already has a longer lease. Callers hold s.mu.
func (s *Server) offer(mac string, requested net.IP, now time.Time) (net.IP, error) {
	if l := s.leases[mac]; l != nil && !now.After(l.expiry) {
		return uintIP(l.ip), nil
	}
	pick, found := uint32(0), false
	if requested != nil && s.inRange(requested) && s.freeFor(ipUint(requested), mac, now) {
		pick, found = ipUint(requested), true
	}
	for i := uint32(0); !found && i < s.size; i++ {
		u := s.start + i
		if !s.reserved(u) && s.freeFor(u, mac, now) {
			pick, found = u, true
		}
	}
	if !found {
		return nil, errExhausted
	}
	s.bind(mac, pick, now.Add(offerHold))
	return uintIP(pick), nil
}

// bind gives u to mac until expiry, dropping whatever either held before.
// Callers hold s.mu.
func (s *Server) bind(mac string, u uint32, expiry time.Time) {
	if old := s.leases[mac]; old != nil {
		delete(s.byIP, old.ip)
	}
	if old := s.byIP[u]; old != nil && old.mac != "" {
		delete(s.leases, old.mac)
	}
	l := &lease{ip: u, mac: mac, expiry: expiry}
	if mac != "" {
		s.leases[mac] = l
	}
	s.byIP[u] = l
}

// release frees mac's address if it holds ip. Callers hold s.mu.
func (s *Server) release(mac string, ip net.IP) {
	l := s.leases[mac]
	if l == nil || (ip.To4() != nil && ipUint(ip) != l.ip) {
		return
	}
	delete(s.leases, mac)
	delete(s.byIP, l.ip)
}
