// Package ntp is a small SNTPv4 client (RFC 4330) that steps the system
// clock once at boot, from `ntp_servers`, before k3s starts: certificates
// and etcd need a sane clock, and boards such as the Raspberry Pi have no
// battery-backed RTC and boot in 1970.
//
// Query asks one server for the offset between its clock and ours. Sync
// tries the configured servers in order (every address a name resolves
// to), and steps the clock through an injected Setter (host.Linux in
// production) with the first valid answer, unless the offset is below
// Client.MinStep. It does not discipline the clock afterwards (no slewing,
// no periodic polls).
//
// An answer is valid only if it is a server-mode reply that echoes our
// random transmit timestamp, from a synchronised server (leap indicator
// not 3, stratum 1–15); a kiss-o'-death (stratum 0) names its code.
package ntp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/keso-os/keso/pkg/phase"
)

// Port is the NTP port used when a server has none.
const Port = 123

// Setter steps the system clock (host.Linux.SetClock).
type Setter interface {
	SetClock(t time.Time) error
}

// Client asks SNTP servers for the time.
type Client struct {
	// Now is the local clock (default time.Now).
	Now func() time.Time
	// Timeout bounds one query to one address (default 2s).
	Timeout time.Duration
	// MinStep: offsets smaller than this leave the clock alone
	// (default 100ms).
	MinStep time.Duration
	// Resolver resolves server names (default net.DefaultResolver).
	Resolver *net.Resolver
}

func (c Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 2 * time.Second
}

func (c Client) minStep() time.Duration {
	if c.MinStep > 0 {
		return c.MinStep
	}
	return 100 * time.Millisecond
}

// Response is one server's valid answer.
type Response struct {
	Server string // as configured
	Addr   string // the address that answered
	// Offset is how far the server's clock is ahead of ours.
	Offset time.Duration
	// RTT is the round-trip delay, without the server's processing time.
	RTT     time.Duration
	Stratum int
}

// ntpEpochOffset is the number of seconds from 1900 (NTP era 0) to 1970.
const ntpEpochOffset = 2208988800

// toNTP converts t to a 64-bit NTP timestamp (era-agnostic: the low 32 bits
// of the seconds since 1900).
func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return secs<<32 | frac
}

// fromNTP converts a 64-bit NTP timestamp to a time, by RFC 4330's rule:
// seconds with the top bit set are in era 0 (1968–2036), others in era 1
// (2036–2104).
func fromNTP(ts uint64) time.Time {
	secs := int64(ts >> 32)
	frac := ts & 0xffffffff
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nsec := int64((frac * 1e9) >> 32)
	return time.Unix(secs-ntpEpochOffset, nsec)
}

// hostPort splits "host", "host:port", "[v6]:port" or a bare IPv6 address.
func hostPort(server string) (string, string) {
	if h, p, err := net.SplitHostPort(server); err == nil {
		return h, p
	}
	return server, strconv.Itoa(Port)
}

// Query asks server ("host", "host:port", an IP) for the time, trying each
// address its name resolves to.
func (c Client) Query(ctx context.Context, server string) (Response, error) {
	host, port := hostPort(server)
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		r := c.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		rctx, cancel := context.WithTimeout(ctx, c.timeout())
		ips, err := r.LookupHost(rctx, host)
		cancel()
		if err != nil {
			return Response{Server: server}, fmt.Errorf("ntp %s: resolve: %w", server, err)
		}
		addrs = ips
	}
	var errs []error
	for _, a := range addrs {
		r, err := c.query(ctx, net.JoinHostPort(a, port))
		if err == nil {
			r.Server = server
			return r, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return Response{Server: server}, fmt.Errorf("ntp %s: %w", server, errors.Join(errs...))
}

func (c Client) query(ctx context.Context, addr string) (Response, error) {
	out := Response{Addr: addr}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return out, fmt.Errorf("%s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	// The transmit timestamp is a random nonce: the server echoes it as
	// the originate timestamp, which proves the answer is to this request.
	var req [48]byte
	req[0] = 0<<6 | 4<<3 | 3 // LI 0, version 4, mode 3 (client)
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return out, fmt.Errorf("%s: random nonce: %w", addr, err)
	}
	copy(req[40:], nonce[:])
	t1 := c.now()
	if _, err := conn.Write(req[:]); err != nil {
		return out, fmt.Errorf("%s: send: %w", addr, err)
	}
	var resp [512]byte
	for {
		n, err := conn.Read(resp[:])
		if err != nil {
			var ne net.Error
			if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
				return out, fmt.Errorf("%s: no answer within %s", addr, c.timeout())
			}
			return out, fmt.Errorf("%s: receive: %w", addr, err)
		}
		t4 := c.now()
		if n < 48 || [8]byte(resp[24:32]) != nonce {
			continue // not an answer to our request: keep waiting
		}
		return parse(resp[:n], t1, t4, addr)
	}
}

// parse validates a server's answer and computes offset and delay.
func parse(b []byte, t1, t4 time.Time, addr string) (Response, error) {
	out := Response{Addr: addr}
	li, vn, mode := b[0]>>6, (b[0]>>3)&7, b[0]&7
	out.Stratum = int(b[1])
	switch {
	case mode != 4:
		return out, fmt.Errorf("%s: answer has mode %d, want 4 (server)", addr, mode)
	case vn < 1 || vn > 4:
		return out, fmt.Errorf("%s: answer has version %d", addr, vn)
	case out.Stratum == 0:
		return out, fmt.Errorf("%s: kiss-o'-death %q: the server refuses to serve us", addr, string(b[12:16]))
	case out.Stratum > 15:
		return out, fmt.Errorf("%s: stratum %d: the server is not synchronised", addr, out.Stratum)
	case li == 3:
		return out, fmt.Errorf("%s: leap indicator 3: the server is not synchronised", addr)
	}
	recv := binary.BigEndian.Uint64(b[32:40])
	xmit := binary.BigEndian.Uint64(b[40:48])
	if xmit == 0 || recv == 0 {
		return out, fmt.Errorf("%s: answer without timestamps", addr)
	}
	t2, t3 := fromNTP(recv), fromNTP(xmit)
	if t3.Before(t2) {
		// The server cannot send before it received: its processing
		// time (t3-t2) would count as a negative delay and put the
		// offset off by half of it.
		return out, fmt.Errorf("%s: answer's transmit time %s is before its receive time %s", addr, t3.Format(time.RFC3339Nano), t2.Format(time.RFC3339Nano))
	}
	// The local clock can be decades off (a board without an RTC boots in
	// 1970), so t1/t4 are only subtracted from each other, and offsets are
	// taken from the server's side: offset = ((t2-t1)+(t3-t4))/2 written as
	// t3 - t4 + delay/2 with delay = (t4-t1)-(t3-t2).
	delay := t4.Sub(t1) - t3.Sub(t2)
	if delay < 0 {
		delay = 0
	}
	out.RTT = delay
	out.Offset = t3.Round(0).Sub(t4.Round(0)) + delay/2
	return out, nil
}

// Sync asks the servers in order and steps the clock with the first valid
// answer. Each change (or a clock already right) is one Change; if no
// server answered, one Failure on keso.ntp_servers lists why. It returns
// the answer used.
func Sync(ctx context.Context, servers []string, c Client, set Setter, rec *phase.Recorder) (Response, error) {
	if len(servers) == 0 {
		rec.Skip("no ntp_servers configured")
		return Response{}, errors.New("ntp: no servers")
	}
	var errs []error
	for _, s := range servers {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		r, err := c.Query(ctx, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		from := fmt.Sprintf("%s (%s), stratum %d, rtt %s", r.Server, r.Addr, r.Stratum, r.RTT.Round(time.Microsecond))
		if abs(r.Offset) < c.minStep() {
			rec.Change("clock-ok", "system clock", fmt.Sprintf("offset %s from %s", r.Offset.Round(time.Microsecond), from))
			return r, nil
		}
		t := c.now().Add(r.Offset)
		if err := set.SetClock(t); err != nil {
			err = fmt.Errorf("step the clock by %s from %s: %w", r.Offset, from, err)
			rec.Fail("keso.ntp_servers", err)
			return r, err
		}
		rec.Change("set-clock", "system clock", fmt.Sprintf("%s, stepped by %s, from %s", t.UTC().Format(time.RFC3339), r.Offset.Round(time.Millisecond), from))
		return r, nil
	}
	err := fmt.Errorf("no NTP server answered: %w", errors.Join(errs...))
	rec.Fail("keso.ntp_servers", err)
	return Response{}, err
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
