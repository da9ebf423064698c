package ntp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/phase"
)

// server is an SNTP server on 127.0.0.1 run by the test. behave edits each
// answer (nil: a correct stratum-2 answer with the server's clock).
type server struct {
	conn   *net.UDPConn
	offset time.Duration // the server's clock is time.Now()+offset
	behave func(req, resp []byte) (send bool)
	mu     sync.Mutex
	hits   int
}

func newServer(t *testing.T, offset time.Duration, behave func(req, resp []byte) bool) *server {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{conn: c, offset: offset, behave: behave}
	go s.serve()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *server) addr() string { return s.conn.LocalAddr().String() }

func (s *server) serve() {
	buf := make([]byte, 512)
	for {
		n, peer, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.hits++
		s.mu.Unlock()
		if n < 48 {
			continue
		}
		req := append([]byte(nil), buf[:48]...)
		recv := time.Now().Add(s.offset)
		resp := make([]byte, 48)
		resp[0] = 0<<6 | 4<<3 | 4 // LI 0, v4, server
		resp[1] = 2               // stratum
		copy(resp[12:16], "GPS\x00")
		copy(resp[24:32], req[40:48]) // originate = client's transmit
		binary.BigEndian.PutUint64(resp[16:24], toNTP(recv.Add(-time.Minute)))
		binary.BigEndian.PutUint64(resp[32:40], toNTP(recv))
		binary.BigEndian.PutUint64(resp[40:48], toNTP(time.Now().Add(s.offset)))
		if s.behave != nil && !s.behave(req, resp) {
			continue
		}
		_, _ = s.conn.WriteToUDP(resp, peer)
	}
}

type setter struct {
	set []time.Time
	err error
}

func (s *setter) SetClock(t time.Time) error {
	if s.err != nil {
		return s.err
	}
	s.set = append(s.set, t)
	return nil
}

func near(a, b time.Time, tol time.Duration) bool { return abs(a.Sub(b)) <= tol }

func TestSyncStepsTheClock(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration
		now    func() time.Time // the local clock
		want   func() time.Time // what the clock should be set to, read at the end
	}{
		{"server 3h ahead", 3 * time.Hour, nil, func() time.Time { return time.Now().Add(3 * time.Hour) }},
		{"server 90s behind", -90 * time.Second, nil, func() time.Time { return time.Now().Add(-90 * time.Second) }},
		{
			// A board without an RTC boots in 1970; the server is right.
			"local clock in 1970", 0,
			func() func() time.Time {
				start := time.Now()
				return func() time.Time { return time.Unix(0, 0).Add(time.Since(start)) }
			}(),
			time.Now,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.offset, nil)
			var set setter
			var console bytes.Buffer
			rec := phase.NewRecorder("ntp", &console, nil)
			r, err := Sync(context.Background(), []string{srv.addr()}, Client{Now: tt.now, Timeout: time.Second}, &set, rec)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.set) != 1 {
				t.Fatalf("clock set %d times, want once", len(set.set))
			}
			if want := tt.want(); !near(set.set[0], want, 2*time.Second) {
				t.Errorf("clock set to %s, want about %s", set.set[0], want)
			}
			if r.Stratum != 2 || r.RTT > time.Second {
				t.Errorf("response: %+v", r)
			}
			if !strings.Contains(console.String(), "keso: ntp: set-clock system clock (") {
				t.Errorf("console: %q", console.String())
			}
		})
	}
}

func TestSyncLeavesAGoodClockAlone(t *testing.T) {
	srv := newServer(t, 0, nil)
	var set setter
	rec := phase.NewRecorder("ntp", nil, nil)
	r, err := Sync(context.Background(), []string{srv.addr()}, Client{}, &set, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.set) != 0 {
		t.Errorf("clock was stepped to %v with an offset of %s", set.set, r.Offset)
	}
	rep := rec.Done()
	if len(rep.Changes) != 1 || rep.Changes[0].Action != "clock-ok" {
		t.Errorf("changes: %+v", rep.Changes)
	}
}

// TestSyncFallsBack: bad or silent servers are skipped, each for its own
// reason, and the first good one sets the clock.
func TestSyncFallsBack(t *testing.T) {
	bad := []struct {
		name    string
		behave  func(req, resp []byte) bool
		wantErr string
	}{
		{"silent", func(req, resp []byte) bool { return false }, "no answer within 300ms"},
		{"kiss-o'-death", func(req, resp []byte) bool { resp[1] = 0; copy(resp[12:16], "RATE"); return true }, `kiss-o'-death "RATE"`},
		{"unsynchronised", func(req, resp []byte) bool { resp[0] = 3<<6 | 4<<3 | 4; return true }, "leap indicator 3"},
		{"stratum 16", func(req, resp []byte) bool { resp[1] = 16; return true }, "stratum 16"},
		{"client mode", func(req, resp []byte) bool { resp[0] = 4<<3 | 3; return true }, "mode 3, want 4"},
		{"no timestamps", func(req, resp []byte) bool { clear(resp[32:48]); return true }, "without timestamps"},
		// Transmit before receive would make the round trip longer than
		// the wait and put the clock off by half the difference.
		{"sent before received", func(req, resp []byte) bool {
			recv := fromNTP(binary.BigEndian.Uint64(resp[32:40]))
			binary.BigEndian.PutUint64(resp[40:48], toNTP(recv.Add(-24*time.Hour)))
			return true
		}, "is before its receive time"},
		// A reply that does not echo our nonce is ignored (spoofed or stale):
		// the client keeps waiting and times out.
		{"wrong originate", func(req, resp []byte) bool { resp[24] ^= 0xff; return true }, "no answer within 300ms"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			first := newServer(t, time.Hour, b.behave)
			second := newServer(t, 2*time.Hour, nil)
			var set setter
			rec := phase.NewRecorder("ntp", nil, nil)
			c := Client{Timeout: 300 * time.Millisecond}
			if _, err := c.Query(context.Background(), first.addr()); err == nil || !strings.Contains(err.Error(), b.wantErr) {
				t.Errorf("query: got error %v, want one containing %q", err, b.wantErr)
			}
			r, err := Sync(context.Background(), []string{first.addr(), second.addr()}, c, &set, rec)
			if err != nil {
				t.Fatal(err)
			}
			if r.Addr != second.addr() || len(set.set) != 1 || !near(set.set[0], time.Now().Add(2*time.Hour), 2*time.Second) {
				t.Errorf("answer from %s, clock set to %v; want the second server's time", r.Addr, set.set)
			}
		})
	}
}

func TestSyncFailures(t *testing.T) {
	silent := newServer(t, 0, func(req, resp []byte) bool { return false })
	good := newServer(t, time.Hour, nil)
	tests := []struct {
		name    string
		servers []string
		setErr  error
		want    string
	}{
		{"all silent", []string{silent.addr(), "127.0.0.1:1"}, nil, "no NTP server answered"},
		{"unresolvable", []string{"ntp.invalid"}, nil, "ntp ntp.invalid: resolve"},
		{"settimeofday fails", []string{good.addr()}, errors.New("operation not permitted"), "step the clock by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := phase.NewRecorder("ntp", nil, nil)
			start := time.Now()
			_, err := Sync(context.Background(), tt.servers, Client{Timeout: 300 * time.Millisecond}, &setter{err: tt.setErr}, rec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			rep := rec.Done()
			if len(rep.Failures) != 1 || rep.Failures[0].Path != "keso.ntp_servers" {
				t.Errorf("failures: %+v, want one on keso.ntp_servers", rep.Failures)
			}
		})
	}
	rec := phase.NewRecorder("ntp", nil, nil)
	if _, err := Sync(context.Background(), nil, Client{}, &setter{}, rec); err == nil || rec.Done().Skipped == "" {
		t.Errorf("no servers: want an error and a skipped phase")
	}
}

// TestSyncByName resolves a host name (localhost, from /etc/hosts).
func TestSyncByName(t *testing.T) {
	srv := newServer(t, time.Hour, nil)
	_, port, _ := net.SplitHostPort(srv.addr())
	var set setter
	r, err := Sync(context.Background(), []string{"localhost:" + port}, Client{Timeout: time.Second}, &set, phase.NewRecorder("ntp", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.Server != "localhost:"+port || r.Addr != srv.addr() || len(set.set) != 1 {
		t.Errorf("got %+v, set %v", r, set.set)
	}
}

func TestTimestamps(t *testing.T) {
	for _, s := range []string{"1970-01-01T00:00:00Z", "2026-11-25T10:00:00.25Z", "2036-02-07T06:28:15Z", "2036-02-07T06:28:17Z", "2040-01-01T00:00:00.5Z"} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := fromNTP(toNTP(want)); !near(got, want, time.Microsecond) {
			t.Errorf("%s: round trip gave %s", s, got)
		}
	}
	for _, tt := range []struct{ in, host, port string }{
		{"pool.ntp.org", "pool.ntp.org", "123"},
		{"10.0.0.1:1123", "10.0.0.1", "1123"},
		{"2001:db8::1", "2001:db8::1", "123"},
		{"[2001:db8::1]:124", "2001:db8::1", "124"},
	} {
		if h, p := hostPort(tt.in); h != tt.host || p != tt.port {
			t.Errorf("hostPort(%q) = %q, %q; want %q, %q", tt.in, h, p, tt.host, tt.port)
		}
	}
}
