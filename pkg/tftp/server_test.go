package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// files is what the test server serves.
type files map[string][]byte

// closer is a file that records being closed.
type closer struct {
	*bytes.Reader
	closed *sync.WaitGroup
}

func (c closer) Close() error { c.closed.Done(); return nil }

// testServer runs a Server on 127.0.0.1:<random port> for the test. Its
// Open serves fs, refuses "secret" with fs.ErrPermission, and records the
// names it was asked for; transfers come out of done.
type testServer struct {
	addr   *net.UDPAddr
	done   chan Transfer
	mu     sync.Mutex
	opened []string
	closed sync.WaitGroup // one per file opened, until closed
}

func newServer(t *testing.T, fsys files, configure func(*Server)) *testServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: conn.LocalAddr().(*net.UDPAddr), done: make(chan Transfer, 16)}
	s := &Server{
		Open: func(name string) (io.ReaderAt, int64, error) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.opened = append(ts.opened, name)
			if name == "secret" {
				return nil, 0, fs.ErrPermission
			}
			b, ok := fsys[name]
			if !ok {
				return nil, 0, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
			}
			ts.closed.Add(1)
			return closer{bytes.NewReader(b), &ts.closed}, int64(len(b)), nil
		},
		Done:    func(tr Transfer) { ts.done <- tr },
		Timeout: 2 * time.Second,
		Logf:    t.Logf,
	}
	if configure != nil {
		configure(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.closed.Wait()
	})
	return ts
}

func (ts *testServer) openedNames() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.opened...)
}

// transfer waits for the next finished transfer.
func (ts *testServer) transfer(t *testing.T) Transfer {
	t.Helper()
	select {
	case tr := <-ts.done:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatal("no transfer ended within 10s")
		return Transfer{}
	}
}

// client is a raw UDP TFTP client for the test.
type client struct {
	t    *testing.T
	c    *net.UDPConn
	srv  *net.UDPAddr // the listening port until the first reply, then the TID
	buf  []byte
	wait time.Duration
}

func newClient(t *testing.T, srv *net.UDPAddr) *client {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, srv: srv, buf: make([]byte, 70000), wait: 5 * time.Second}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	if _, err := c.c.WriteToUDP(b, c.srv); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next packet and moves to its sender's TID; nil after
// c.wait without one.
func (c *client) recv() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(c.wait))
	n, from, err := c.c.ReadFromUDP(c.buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.srv = from
	return append([]byte(nil), c.buf[:n]...)
}

// mustRecv is recv that fails the test on a timeout.
func (c *client) mustRecv() []byte {
	c.t.Helper()
	b := c.recv()
	if b == nil {
		c.t.Fatalf("no packet within %v", c.wait)
	}
	return b
}

// data checks that b is DATA block and returns its payload.
func (c *client) data(b []byte, block uint16) []byte {
	c.t.Helper()
	if len(b) < 4 || binary.BigEndian.Uint16(b) != OpDATA || binary.BigEndian.Uint16(b[2:]) != block {
		c.t.Fatalf("got %.40q, want DATA %d", b, block)
	}
	return b[4:]
}

// get reads a whole file after the request was sent and, if oack is set,
// answered with an OACK the caller already acknowledged.
func (c *client) get(blksize int, first uint16) []byte {
	c.t.Helper()
	var out []byte
	for block := first; ; block++ {
		d := c.data(c.mustRecv(), block)
		out = append(out, d...)
		c.send(ackPacket(block))
		if len(d) < blksize {
			return out
		}
	}
}

// wantError checks that b is an ERROR with code.
func wantError(t *testing.T, b []byte, code uint16) {
	t.Helper()
	r, err := parseReply(b)
	if err != nil || r.op != OpERROR || r.err.Code != code {
		t.Fatalf("got %q, want ERROR %d", b, code)
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestServeGet(t *testing.T) {
	fsys := files{
		"empty":     nil,
		"small":     []byte("hello, PXE\n"),
		"two":       randomBytes(1000),
		"exact":     randomBytes(1024),
		"boot/ipxe": randomBytes(5000),
	}
	ts := newServer(t, fsys, nil)
	tests := []struct {
		req     []byte
		file    string
		oack    string // the OACK's options, "" if none
		blksize int
	}{
		{rrq("small", "octet"), "small", "", 512},
		{rrq("empty", "octet"), "empty", "", 512},
		{rrq("two", "netascii"), "two", "", 512},
		{rrq("exact", "octet"), "exact", "", 512}, // ends with an empty DATA 3
		{rrq("/boot/ipxe", "OCTET"), "boot/ipxe", "", 512},
		{rrq(`boot\ipxe`, "octet", "windowsize", "4"), "boot/ipxe", "", 512},
		{rrq("boot/ipxe", "octet", "blksize", "1024"), "boot/ipxe", "blksize\x001024\x00", 1024},
		{rrq("exact", "octet", "blksize", "1024", "tsize", "0"), "exact", "blksize\x001024\x00tsize\x001024\x00", 1024},
		{rrq("boot/ipxe", "octet", "blksize", "9000"), "boot/ipxe", "blksize\x001468\x00", 1468},
		{rrq("boot/ipxe", "octet", "blksize", "8"), "boot/ipxe", "blksize\x008\x00", 8},
		{rrq("boot/ipxe", "octet", "tsize", "0", "timeout", "3"), "boot/ipxe", "timeout\x003\x00tsize\x005000\x00", 512},
		{rrq("empty", "octet", "tsize", "0"), "empty", "tsize\x000\x00", 512},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.req[2:]), func(t *testing.T) {
			c := newClient(t, ts.addr)
			c.send(tt.req)
			first := uint16(1)
			if tt.oack != "" {
				if got, want := c.mustRecv(), "\x00\x06"+tt.oack; string(got) != want {
					t.Fatalf("got %q, want OACK %q", got, want)
				}
				c.send(ackPacket(0))
			}
			got := c.get(tt.blksize, first)
			if !bytes.Equal(got, fsys[tt.file]) {
				t.Errorf("got %d bytes, want the %d of %s", len(got), len(fsys[tt.file]), tt.file)
			}
			tr := ts.transfer(t)
			if tr.Err != nil || tr.Name != tt.file || tr.Bytes != int64(len(fsys[tt.file])) || tr.Blksize != tt.blksize {
				t.Errorf("Transfer = %+v, want %s, %d bytes, blksize %d, no error", tr, tt.file, len(fsys[tt.file]), tt.blksize)
			}
			if tr.Remote.String() != c.c.LocalAddr().String() {
				t.Errorf("Transfer.Remote = %v, want %v", tr.Remote, c.c.LocalAddr())
			}
			if c.srv.Port == ts.addr.Port {
				t.Errorf("the transfer used the listening port %d, want its own TID", ts.addr.Port)
			}
		})
	}
}

// TestServeRefused: requests answered with a single ERROR, and which
// names reach Open.
func TestServeRefused(t *testing.T) {
	ts := newServer(t, files{"f": []byte("x")}, nil)
	tests := []struct {
		name string
		req  []byte
		code uint16
		open string // the name Open gets, "" for none
	}{
		{"write request", request(OpWRQ, "f", "octet"), ErrAccess, ""},
		{"write request for a new file", request(OpWRQ, "new", "octet", "tsize", "10"), ErrAccess, ""},
		{"DATA to the server port", appendData(nil, 1, []byte("x")), ErrIllegalOp, ""},
		{"ACK to the server port", ackPacket(1), ErrIllegalOp, ""},
		{"unknown opcode", request(42, "f", "octet"), ErrIllegalOp, ""},
		{"one byte", []byte{1}, ErrIllegalOp, ""},
		{"missing file", rrq("nope", "octet"), ErrNotFound, "nope"},
		{"permission", rrq("secret", "octet"), ErrAccess, "secret"},
		{"escape", rrq("../etc/passwd", "octet"), ErrAccess, ""},
		{"rooted escape", rrq("/../f", "octet"), ErrAccess, ""},
		{"deep escape", rrq("a/../../f", "octet"), ErrAccess, ""},
		{"empty name", rrq("", "octet"), ErrAccess, ""},
		{"bad mode", rrq("f", "mail"), ErrIllegalOp, ""},
		{"no terminator", []byte("\x00\x01f\x00octet"), ErrIllegalOp, ""},
		{"odd options", rrq("f", "octet", "blksize"), ErrIllegalOp, ""},
		{"bad blksize", rrq("f", "octet", "blksize", "lots"), ErrBadOption, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.openedNames())
			c := newClient(t, ts.addr)
			c.send(tt.req)
			wantError(t, c.mustRecv(), tt.code)
			tr := ts.transfer(t)
			var te *Error
			if tt.open == "" && !errors.As(tr.Err, &te) {
				t.Errorf("Transfer.Err = %v, want an *Error", tr.Err)
			}
			if tr.Err == nil {
				t.Errorf("Transfer.Err is nil")
			}
			opened := ts.openedNames()[before:]
			if tt.open == "" && len(opened) > 0 || tt.open != "" && (len(opened) != 1 || opened[0] != tt.open) {
				t.Errorf("Open got %q, want %q", opened, tt.open)
			}
		})
	}
}

func TestServeIgnoresStrayError(t *testing.T) {
	ts := newServer(t, files{"f": []byte("x")}, nil)
	c := newClient(t, ts.addr)
	c.wait = 200 * time.Millisecond
	c.send(errorPacket(ErrUnknownTID, "unknown transfer ID"))
	if b := c.recv(); b != nil {
		t.Errorf("got %q in answer to an ERROR, want nothing", b)
	}
	c.wait = 5 * time.Second
	c.send(rrq("f", "octet"))
	if got := c.get(512, 1); string(got) != "x" {
		t.Errorf("got %q, want %q", got, "x")
	}
}

// TestServeDuplicateAck: a duplicate ACK sends nothing (no Sorcerer's
// Apprentice), the right ACK the next block.
func TestServeDuplicateAck(t *testing.T) {
	file := randomBytes(3 * 512)
	ts := newServer(t, files{"f": file}, nil) // Timeout 2s: no retransmit within the test's waits
	c := newClient(t, ts.addr)
	c.send(rrq("f", "octet"))
	got := c.data(c.mustRecv(), 1)
	c.send(ackPacket(1))
	got = append(got, c.data(c.mustRecv(), 2)...)
	c.send(ackPacket(1)) // duplicate
	c.send(ackPacket(1))
	c.send(ackPacket(0)) // old
	c.wait = 300 * time.Millisecond
	if b := c.recv(); b != nil {
		t.Fatalf("got %.20q after duplicate ACKs, want nothing", b)
	}
	c.wait = 5 * time.Second
	c.send(ackPacket(2))
	got = append(got, c.get(512, 3)...)
	if !bytes.Equal(got, file) {
		t.Errorf("got %d bytes, want %d", len(got), len(file))
	}
	if tr := ts.transfer(t); tr.Err != nil {
		t.Errorf("Transfer.Err = %v", tr.Err)
	}
}

// TestServeRetransmit: an ACK lost is a DATA sent again after Timeout, up
// to Retries times, then the transfer fails; an OACK is retransmitted the
// same way.
func TestServeRetransmit(t *testing.T) {
	file := randomBytes(700)
	ts := newServer(t, files{"f": file}, func(s *Server) {
		s.Timeout = 50 * time.Millisecond
		s.Retries = 2
	})
	t.Run("recovers", func(t *testing.T) {
		c := newClient(t, ts.addr)
		c.send(rrq("f", "octet"))
		first := c.mustRecv()
		if again := c.mustRecv(); !bytes.Equal(again, first) { // ACK "lost"
			t.Fatalf("got %.20q, want DATA 1 again", again)
		}
		c.send(ackPacket(1))
		got := append(c.data(first, 1), c.get(512, 2)...)
		if !bytes.Equal(got, file) {
			t.Errorf("got %d bytes, want %d", len(got), len(file))
		}
		if tr := ts.transfer(t); tr.Err != nil {
			t.Errorf("Transfer.Err = %v", tr.Err)
		}
	})
	for _, tt := range []struct {
		name string
		req  []byte
		want string
	}{
		{"gives up on DATA", rrq("f", "octet"), "\x00\x03\x00\x01"},
		{"gives up on OACK", rrq("f", "octet", "tsize", "0"), "\x00\x06tsize\x00700\x00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, ts.addr)
			c.wait = time.Second
			c.send(tt.req)
			for i := 0; i < 3; i++ { // the first send and 2 retries
				if b := c.mustRecv(); !bytes.HasPrefix(b, []byte(tt.want)) {
					t.Fatalf("packet %d: got %.20q, want %q", i, b, tt.want)
				}
			}
			c.wait = 300 * time.Millisecond
			if b := c.recv(); b != nil {
				t.Errorf("got %.20q after Retries, want nothing", b)
			}
			tr := ts.transfer(t)
			if tr.Err == nil || !strings.Contains(tr.Err.Error(), "no ACK after 3 tries") {
				t.Errorf("Transfer.Err = %v, want no ACK after 3 tries", tr.Err)
			}
		})
	}
}

// TestServeWrongTID: a packet from another port gets "unknown transfer
// ID" and does not disturb the transfer.
func TestServeWrongTID(t *testing.T) {
	file := randomBytes(1500)
	ts := newServer(t, files{"f": file}, nil)
	c := newClient(t, ts.addr)
	c.send(rrq("f", "octet"))
	got := c.data(c.mustRecv(), 1)

	intruder := newClient(t, c.srv) // the transfer's TID
	intruder.send(ackPacket(1))
	b := intruder.mustRecv()
	wantError(t, b, ErrUnknownTID)
	if intruder.srv.Port != c.srv.Port {
		t.Errorf("the error came from port %d, want the transfer's %d", intruder.srv.Port, c.srv.Port)
	}
	intruder.send(errorPacket(ErrNotDefined, "go away")) // an ERROR from a stranger does not end it either
	intruder.wait = 200 * time.Millisecond
	if b := intruder.recv(); b != nil {
		t.Errorf("got %q in answer to a stranger's ERROR, want nothing", b)
	}

	c.send(ackPacket(1))
	got = append(got, c.get(512, 2)...)
	if !bytes.Equal(got, file) {
		t.Errorf("got %d bytes, want %d", len(got), len(file))
	}
	if tr := ts.transfer(t); tr.Err != nil {
		t.Errorf("Transfer.Err = %v", tr.Err)
	}
}

// TestServeClientError: an ERROR from the client (here refusing the OACK,
// as RFC 2347 lets it) ends the transfer.
func TestServeClientError(t *testing.T) {
	ts := newServer(t, files{"f": []byte("x")}, nil)
	c := newClient(t, ts.addr)
	c.send(rrq("f", "octet", "blksize", "1024"))
	if b := c.mustRecv(); binary.BigEndian.Uint16(b) != OpOACK {
		t.Fatalf("got %q, want an OACK", b)
	}
	c.send(errorPacket(ErrBadOption, "no thanks"))
	tr := ts.transfer(t)
	var te *Error
	if !errors.As(tr.Err, &te) || te.Code != ErrBadOption || te.Msg != "no thanks" {
		t.Errorf("Transfer.Err = %v, want the client's error 8", tr.Err)
	}
	c.wait = 200 * time.Millisecond
	if b := c.recv(); b != nil {
		t.Errorf("got %q after the client's ERROR, want nothing", b)
	}
}

// TestServeBlockWrap: a file of more than 65535 blocks rolls the block
// number over to 0.
func TestServeBlockWrap(t *testing.T) {
	file := randomBytes(65536*512 + 100) // blocks 1..65535, 0, then a short 1
	ts := newServer(t, files{"big": file}, nil)
	c := newClient(t, ts.addr)
	c.send(rrq("big", "octet", "tsize", "0"))
	if got, want := c.mustRecv(), fmt.Sprintf("\x00\x06tsize\x00%d\x00", len(file)); string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	c.send(ackPacket(0))
	var got []byte
	var blocks []uint16
	for block := uint16(1); ; block++ {
		d := c.data(c.mustRecv(), block)
		got = append(got, d...)
		if block <= 1 {
			blocks = append(blocks, block)
		}
		c.send(ackPacket(block))
		if len(d) < 512 {
			break
		}
	}
	if !bytes.Equal(got, file) {
		t.Errorf("got %d bytes, want %d", len(got), len(file))
	}
	// Blocks 1, then 0 and 1 again after the wrap.
	if want := []uint16{1, 0, 1}; fmt.Sprint(blocks) != fmt.Sprint(want) {
		t.Errorf("blocks 0 and 1 came as %v, want %v", blocks, want)
	}
	if tr := ts.transfer(t); tr.Err != nil || tr.Bytes != int64(len(file)) {
		t.Errorf("Transfer = %+v, want %d bytes", tr, len(file))
	}
}

// TestServeCancel: cancelling the context ends Serve and the transfers in
// flight, which are reported to Done.
func TestServeCancel(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Transfer, 1)
	s := &Server{
		Open: func(string) (io.ReaderAt, int64, error) { return strings.NewReader("abc"), 3, nil },
		Done: func(tr Transfer) { done <- tr },
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, conn) }()
	c := newClient(t, conn.LocalAddr().(*net.UDPAddr))
	c.send(rrq("f", "octet", "tsize", "0"))
	c.mustRecv() // the OACK; never acknowledged
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of the cancel")
	}
	select {
	case tr := <-done:
		if !errors.Is(tr.Err, context.Canceled) {
			t.Errorf("Transfer.Err = %v, want context.Canceled", tr.Err)
		}
	default:
		t.Error("Serve returned before the transfer was reported")
	}
	if _, err := conn.WriteTo([]byte{0}, conn.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writing to conn after Serve: %v, want net.ErrClosed", err)
	}
}

// TestServeReadError: a file that turns out shorter than its size is an
// ERROR to the client, not a truncated transfer.
func TestServeReadError(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Transfer, 1)
	s := &Server{
		Open: func(string) (io.ReaderAt, int64, error) { return strings.NewReader("abc"), 1000, nil },
		Done: func(tr Transfer) { done <- tr },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, conn)
	c := newClient(t, conn.LocalAddr().(*net.UDPAddr))
	c.send(rrq("f", "octet"))
	wantError(t, c.mustRecv(), ErrNotDefined)
	if tr := <-done; tr.Err == nil || !strings.Contains(tr.Err.Error(), "3 of 512 bytes") {
		t.Errorf("Transfer.Err = %v, want a short read", tr.Err)
	}
}

func TestServeNeedsOpen(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Server{}).Serve(context.Background(), conn); err == nil {
		t.Error("Serve without Open succeeded")
	}
}
