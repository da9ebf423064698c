package tftp

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350, OACK from RFC 2347).
const (
	OpRRQ   uint16 = 1
	OpWRQ   uint16 = 2
	OpDATA  uint16 = 3
	OpACK   uint16 = 4
	OpERROR uint16 = 5
	OpOACK  uint16 = 6
)

// Error codes of an ERROR packet (RFC 1350, 8 from RFC 2347).
const (
	ErrNotDefined uint16 = 0
	ErrNotFound   uint16 = 1
	ErrAccess     uint16 = 2
	ErrDiskFull   uint16 = 3
	ErrIllegalOp  uint16 = 4
	ErrUnknownTID uint16 = 5
	ErrFileExists uint16 = 6
	ErrNoSuchUser uint16 = 7
	ErrBadOption  uint16 = 8
)

// Option ranges (RFC 2348, RFC 2349).
const (
	defaultBlksize = 512
	minBlksize     = 8
	maxBlksizeRFC  = 65464
	minTimeout     = 1
	maxTimeout     = 255
)

// MaxBlksize is the largest block size the server agrees to: a larger
// blksize request is acknowledged with this value, so that a DATA packet
// (4 bytes of header, 8 of UDP, 20 of IPv4) fits a 1500-byte Ethernet MTU
// and is never fragmented (fragments are what PXE ROMs handle worst).
const MaxBlksize = 1468

// Error is the code and message of an ERROR packet: the one the server
// sends for a refused request, or the one a client sent.
type Error struct {
	Code uint16
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("tftp error %d: %s", e.Code, e.Msg) }

// Request is a parsed read (or write) request.
type Request struct {
	Op   uint16 // OpRRQ or OpWRQ
	Name string // cleaned by CleanName: fs.ValidPath, never "." (the root)
	Mode string // "octet" or "netascii", lower case
	// Options, each zero when not asked for or out of its RFC range
	// (an option out of range is left out of the OACK, as RFC 2347 allows).
	Blksize int  // RFC 2348: 8..65464 as asked, not yet clamped to MaxBlksize
	Timeout int  // RFC 2349: seconds, 1..255
	Tsize   bool // RFC 2349: the client asks for the file's size
}

// ParseRequest parses an RRQ or WRQ packet: opcode, file name, mode and
// option/value pairs, each a NUL-terminated string. Option names and the
// mode are case-insensitive; unknown options are ignored, and so is the
// first of a repeated option (the last one counts). NUL bytes after the
// last option (padding some clients add) are ignored; an option may have
// an empty value (RFC 2090's multicast does). The name is cleaned
// with CleanName.
//
// The error is always an *Error, ready to send: access violation for a
// bad name, option negotiation failed for a non-numeric option value,
// illegal operation for anything else.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, &Error{ErrIllegalOp, "short packet"}
	}
	op := binary.BigEndian.Uint16(b)
	if op != OpRRQ && op != OpWRQ {
		return Request{}, &Error{ErrIllegalOp, fmt.Sprintf("opcode %d is not a request", op)}
	}
	rest := b[2:]
	if len(rest) == 0 || rest[len(rest)-1] != 0 {
		return Request{}, &Error{ErrIllegalOp, "request not NUL-terminated"}
	}
	fields := strings.Split(string(rest[:len(rest)-1]), "\x00")
	if len(fields) < 2 {
		return Request{}, &Error{ErrIllegalOp, "request without a mode"}
	}
	r := Request{Op: op, Mode: strings.ToLower(fields[1])}
	if r.Mode != "octet" && r.Mode != "netascii" {
		return Request{}, &Error{ErrIllegalOp, fmt.Sprintf("unsupported mode %q", fields[1])}
	}
	opts := fields[2:]
	for i := 0; i < len(opts); i += 2 {
		if opts[i] == "" {
			if strings.Join(opts[i:], "") != "" {
				return Request{}, &Error{ErrIllegalOp, "empty option name"}
			}
			break // NUL padding
		}
		if i+1 == len(opts) {
			return Request{}, &Error{ErrIllegalOp, fmt.Sprintf("option %q without a value", opts[i])}
		}
		name, val := strings.ToLower(opts[i]), opts[i+1]
		if name != "blksize" && name != "timeout" && name != "tsize" {
			continue
		}
		n, err := strconv.ParseUint(val, 10, 63)
		if err != nil {
			return Request{}, &Error{ErrBadOption, fmt.Sprintf("option %s: value %q is not a number", name, val)}
		}
		switch name {
		case "blksize":
			r.Blksize = 0
			if n >= minBlksize && n <= maxBlksizeRFC {
				r.Blksize = int(n)
			}
		case "timeout":
			r.Timeout = 0
			if n >= minTimeout && n <= maxTimeout {
				r.Timeout = int(n)
			}
		case "tsize":
			// RFC 2349 has the client send 0 in a read request; any size
			// is taken as the question.
			r.Tsize = true
		}
	}
	name, err := CleanName(fields[0])
	if err != nil {
		return Request{}, err
	}
	r.Name = name
	return r, nil
}

// CleanName turns a requested file name into a path relative to the
// served root, or refuses it with an access violation *Error. A backslash
// is a separator (as Windows-minded PXE clients mean it), leading slashes
// are dropped (an absolute path is taken relative to the root), and any
// ".." element is refused, even one that would stay inside the root (as
// tftp-hpa does). Empty names, the root itself and names with control
// characters (NUL included) are refused too. The result satisfies
// fs.ValidPath and is not ".", so it can be handed to an fs.FS.
func CleanName(name string) (string, error) {
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return "", &Error{ErrAccess, "control character in file name"}
		}
	}
	name = strings.ReplaceAll(name, `\`, "/")
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", &Error{ErrAccess, "file name outside the root"}
		}
	}
	name = strings.TrimLeft(path.Clean("/"+name), "/")
	if name == "" || !fs.ValidPath(name) {
		return "", &Error{ErrAccess, "no file name"}
	}
	return name, nil
}

// appendData appends a DATA packet to dst.
func appendData(dst []byte, block uint16, data []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, OpDATA)
	dst = binary.BigEndian.AppendUint16(dst, block)
	return append(dst, data...)
}

// ackPacket builds an ACK packet (what a client sends; for tests).
func ackPacket(block uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, OpACK)
	return binary.BigEndian.AppendUint16(b, block)
}

// option is one option/value pair of an OACK.
type option struct{ name, value string }

// oackPacket builds an OACK packet with the given options, in order.
func oackPacket(opts []option) []byte {
	b := binary.BigEndian.AppendUint16(nil, OpOACK)
	for _, o := range opts {
		b = append(b, o.name...)
		b = append(b, 0)
		b = append(b, o.value...)
		b = append(b, 0)
	}
	return b
}

// errorPacket builds an ERROR packet. The message is cut at a NUL, which
// would end it early anyway.
func errorPacket(code uint16, msg string) []byte {
	msg, _, _ = strings.Cut(msg, "\x00")
	b := binary.BigEndian.AppendUint16(nil, OpERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}

// reply is what a client sends during a transfer: an ACK or an ERROR.
type reply struct {
	op    uint16
	block uint16 // ACK
	err   *Error // ERROR
}

// parseReply parses an ACK or ERROR packet (bytes after an ACK's block
// number are ignored); anything else is an illegal operation *Error. An ERROR's
// message may lack its NUL (a sloppy client): the message is then the
// rest of the packet.
func parseReply(b []byte) (reply, error) {
	if len(b) < 4 {
		return reply{}, &Error{ErrIllegalOp, "short packet"}
	}
	op := binary.BigEndian.Uint16(b)
	switch op {
	case OpACK:
		return reply{op: op, block: binary.BigEndian.Uint16(b[2:])}, nil
	case OpERROR:
		msg, _, _ := strings.Cut(string(b[4:]), "\x00")
		return reply{op: op, err: &Error{binary.BigEndian.Uint16(b[2:]), msg}}, nil
	}
	return reply{}, &Error{ErrIllegalOp, fmt.Sprintf("unexpected opcode %d", op)}
}

// plan is how a read request is to be served: the block size and
// retransmit timeout, and the OACK to send first (nil: no option was
// accepted, so the transfer starts with DATA 1).
type plan struct {
	blksize int
	timeout int // seconds, 0: the server's own
	oack    []byte
}

// negotiate decides the plan for a read request of a file of the given
// size (RFC 2347: acknowledge the options the server accepts, and only
// those).
func negotiate(r Request, size int64) plan {
	p := plan{blksize: defaultBlksize}
	var opts []option
	if r.Blksize > 0 {
		p.blksize = min(r.Blksize, MaxBlksize)
		opts = append(opts, option{"blksize", strconv.Itoa(p.blksize)})
	}
	if r.Timeout > 0 {
		p.timeout = r.Timeout
		opts = append(opts, option{"timeout", strconv.Itoa(p.timeout)})
	}
	if r.Tsize {
		opts = append(opts, option{"tsize", strconv.FormatInt(size, 10)})
	}
	if len(opts) > 0 {
		p.oack = oackPacket(opts)
	}
	return p
}
