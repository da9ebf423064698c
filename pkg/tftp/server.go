package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"time"
)

// Server serves read requests.
type Server struct {
	// Open returns the file for a request's path (already cleaned, no
	// leading slash) and its size, or an error: fs.ErrPermission is
	// reported to the client as "access violation", any other error as
	// "file not found". If the io.ReaderAt is also an io.Closer, it is
	// closed when the transfer ends.
	Open func(name string) (io.ReaderAt, int64, error)
	// Done, if set, is called after each transfer ends (success or
	// failure), refused requests included, from the transfer's goroutine:
	// calls may be concurrent. Serve returns only after the last one.
	Done func(t Transfer)
	// Timeout is the per-packet retransmit timeout (default 1s), unless
	// the client negotiates its own with the timeout option.
	Timeout time.Duration
	// Retries is how many times a packet is sent again before the
	// transfer is given up (default 5; zero or less means the default).
	Retries int
	// MaxTransfers bounds the transfers in flight (default 64); a request
	// beyond it is dropped, and the client will ask again.
	MaxTransfers int
	// Logf, if set, gets one line per transfer.
	Logf func(format string, args ...any)
}

// Transfer is the outcome of one request.
type Transfer struct {
	Remote  net.Addr
	Name    string // as cleaned; the raw name if it was refused
	Bytes   int64  // file bytes the client acknowledged
	Blksize int
	Err     error
	Took    time.Duration
}

// Serve answers requests arriving on conn, each transfer in its own
// goroutine on its own ephemeral UDP socket. It returns nil when ctx is
// done, after closing conn and ending the transfers in flight, or the
// error that made reading conn fail. conn must be a UDP socket.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	if s.Open == nil {
		return errors.New("tftp: Server.Open is nil")
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("tftp: serve on %s: not a UDP socket", conn.LocalAddr())
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var wg sync.WaitGroup
	defer func() {
		stop()
		cancel()
		wg.Wait()
	}()
	maxTransfers := s.MaxTransfers
	if maxTransfers <= 0 {
		maxTransfers = 64
	}
	slots := make(chan struct{}, maxTransfers)
	buf := make([]byte, 65536)
	for {
		n, remote, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp: read %s: %w", conn.LocalAddr(), err)
		}
		select {
		case slots <- struct{}{}:
		default:
			s.logf("tftp: %s: too many transfers, request dropped", remote)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			s.handle(ctx, local, remote, pkt)
		}()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// handle answers one request from remote on a new socket.
func (s *Server) handle(ctx context.Context, local *net.UDPAddr, remote net.Addr, pkt []byte) {
	if len(pkt) >= 2 && pkt[0] == 0 && pkt[1] == byte(OpERROR) {
		return // never answer an ERROR (RFC 1350), e.g. a late one from a finished transfer
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP, Zone: local.Zone})
	if err != nil {
		s.logf("tftp: %s: no socket for the transfer: %v", remote, err)
		return
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()

	start := time.Now()
	t := Transfer{Remote: remote}
	t.Name, t.Blksize, t.Bytes, t.Err = s.transfer(ctx, c, remote, pkt)
	t.Took = time.Since(start)
	if t.Err != nil {
		s.logf("tftp: %s: %q: %v", remote, t.Name, t.Err)
	} else {
		s.logf("tftp: %s: %q: sent %d bytes in %v (blksize %d)", remote, t.Name, t.Bytes, t.Took.Round(time.Millisecond), t.Blksize)
	}
	if s.Done != nil {
		s.Done(t)
	}
}

// transfer serves one request: it returns the file name, block size,
// bytes acknowledged and the error that ended the transfer, if any.
func (s *Server) transfer(ctx context.Context, c *net.UDPConn, remote net.Addr, pkt []byte) (string, int, int64, error) {
	p := peer{c: c, remote: remote, timeout: s.Timeout, retries: s.Retries}
	if p.timeout <= 0 {
		p.timeout = time.Second
	}
	if p.retries <= 0 {
		p.retries = 5
	}
	req, err := ParseRequest(pkt)
	if err == nil && req.Op == OpWRQ {
		err = &Error{ErrAccess, "read-only server"}
	}
	if err != nil {
		var te *Error
		errors.As(err, &te)
		p.send(errorPacket(te.Code, te.Msg))
		return rawName(pkt), 0, 0, err
	}
	f, size, err := s.Open(req.Name)
	if err == nil && size < 0 {
		err = fmt.Errorf("negative size %d", size)
	}
	if err != nil {
		code, msg := ErrNotFound, "file not found"
		if errors.Is(err, fs.ErrPermission) {
			code, msg = ErrAccess, "access violation"
		}
		p.send(errorPacket(code, msg))
		return req.Name, 0, 0, fmt.Errorf("open: %w", err)
	}
	if cl, ok := f.(io.Closer); ok {
		defer cl.Close()
	}
	plan := negotiate(req, size)
	if plan.timeout > 0 {
		p.timeout = time.Duration(plan.timeout) * time.Second
	}
	if plan.oack != nil {
		if err := p.exchange(ctx, plan.oack, 0); err != nil {
			return req.Name, plan.blksize, 0, fmt.Errorf("option acknowledgement: %w", err)
		}
	}
	data := make([]byte, plan.blksize)
	var out []byte
	var off int64
	for n := int64(1); ; n++ {
		want := min(int64(plan.blksize), size-off)
		if got, err := f.ReadAt(data[:want], off); int64(got) < want {
			p.send(errorPacket(ErrNotDefined, "read error"))
			return req.Name, plan.blksize, off, fmt.Errorf("read %q at %d: %d of %d bytes: %w", req.Name, off, got, want, err)
		}
		out = appendData(out[:0], uint16(n), data[:want])
		if err := p.exchange(ctx, out, uint16(n)); err != nil {
			return req.Name, plan.blksize, off, fmt.Errorf("block %d: %w", n, err)
		}
		off += want
		if want < int64(plan.blksize) {
			return req.Name, plan.blksize, off, nil
		}
	}
}

// rawName is the file name of a request that could not be parsed, for
// Transfer.Name and logs.
func rawName(pkt []byte) string {
	if len(pkt) < 2 {
		return ""
	}
	name := pkt[2:]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return string(name)
}

// peer is a transfer's socket and the client's address (its TID).
type peer struct {
	c       *net.UDPConn
	remote  net.Addr
	timeout time.Duration
	retries int
	buf     [1024]byte
}

func (p *peer) send(b []byte) error {
	_, err := p.c.WriteTo(b, p.remote)
	return err
}

// exchange sends pkt and waits for the ACK of block, sending pkt again
// after each timeout, up to p.retries times. Other ACKs (duplicates, old
// ones) are ignored without sending anything, so that a duplicated ACK
// does not double the DATA stream (the Sorcerer's Apprentice bug);
// packets from another address or port get an "unknown transfer ID"
// error (unless they are ERRORs) and do not disturb the transfer. An ERROR from the client, or
// anything else from it, ends the transfer.
func (p *peer) exchange(ctx context.Context, pkt []byte, block uint16) error {
	for try := 0; try <= p.retries; try++ {
		if err := p.send(pkt); err != nil {
			return ctxErr(ctx, err)
		}
		deadline := time.Now().Add(p.timeout)
		if err := p.c.SetReadDeadline(deadline); err != nil {
			return ctxErr(ctx, err) // the socket is closed when ctx is done
		}
		for {
			n, from, err := p.c.ReadFrom(p.buf[:])
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // send again
			}
			if err != nil {
				return ctxErr(ctx, err)
			}
			if !sameAddr(from, p.remote) {
				if n < 2 || p.buf[1] != byte(OpERROR) || p.buf[0] != 0 {
					p.c.WriteTo(errorPacket(ErrUnknownTID, "unknown transfer ID"), from)
				}
				continue
			}
			r, err := parseReply(p.buf[:n])
			if err != nil {
				var te *Error
				errors.As(err, &te)
				p.send(errorPacket(te.Code, te.Msg))
				return err
			}
			if r.op == OpERROR {
				return fmt.Errorf("client: %w", r.err)
			}
			if r.block == block {
				return nil
			}
		}
	}
	return fmt.Errorf("no ACK after %d tries, %v apart", p.retries+1, p.timeout)
}

// ctxErr prefers the context's error to the socket's when the context is
// done (the socket was closed because of it).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// sameAddr reports whether a and b are the same UDP address and port.
func sameAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	if ok1 && ok2 {
		return ua.Port == ub.Port && ua.IP.Equal(ub.IP)
	}
	return a.String() == b.String()
}
