package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// request builds an RRQ or WRQ from its NUL-terminated strings.
func request(op uint16, fields ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

func rrq(fields ...string) []byte { return request(OpRRQ, fields...) }

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want Request
	}{
		{"plain", rrq("ipxe.efi", "octet"), Request{Op: OpRRQ, Name: "ipxe.efi", Mode: "octet"}},
		{"mode case", rrq("ipxe.efi", "OcTeT"), Request{Op: OpRRQ, Name: "ipxe.efi", Mode: "octet"}},
		{"netascii", rrq("a", "NETASCII"), Request{Op: OpRRQ, Name: "a", Mode: "netascii"}},
		{"wrq", request(OpWRQ, "a", "octet"), Request{Op: OpWRQ, Name: "a", Mode: "octet"}},
		{"absolute", rrq("/boot/ipxe.efi", "octet"), Request{Op: OpRRQ, Name: "boot/ipxe.efi", Mode: "octet"}},
		{"backslashes", rrq(`\boot\x86\pxe.0`, "octet"), Request{Op: OpRRQ, Name: "boot/x86/pxe.0", Mode: "octet"}},
		{"dots and slashes", rrq("//a/./b//c/", "octet"), Request{Op: OpRRQ, Name: "a/b/c", Mode: "octet"}},
		{"all options", rrq("f", "octet", "blksize", "1432", "tsize", "0", "timeout", "3"),
			Request{Op: OpRRQ, Name: "f", Mode: "octet", Blksize: 1432, Tsize: true, Timeout: 3}},
		{"option names case", rrq("f", "octet", "BLKSIZE", "1024", "TSize", "0"),
			Request{Op: OpRRQ, Name: "f", Mode: "octet", Blksize: 1024, Tsize: true}},
		{"blksize not clamped yet", rrq("f", "octet", "blksize", "65464"), Request{Op: OpRRQ, Name: "f", Mode: "octet", Blksize: 65464}},
		{"blksize min", rrq("f", "octet", "blksize", "8"), Request{Op: OpRRQ, Name: "f", Mode: "octet", Blksize: 8}},
		{"blksize too small", rrq("f", "octet", "blksize", "7"), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"blksize too big", rrq("f", "octet", "blksize", "65465"), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"timeout 0", rrq("f", "octet", "timeout", "0"), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"timeout 256", rrq("f", "octet", "timeout", "256"), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"timeout 255", rrq("f", "octet", "timeout", "255"), Request{Op: OpRRQ, Name: "f", Mode: "octet", Timeout: 255}},
		{"tsize nonzero", rrq("f", "octet", "tsize", "12"), Request{Op: OpRRQ, Name: "f", Mode: "octet", Tsize: true}},
		{"unknown options", rrq("f", "octet", "windowsize", "x", "multicast", ""), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"last repeat wins", rrq("f", "octet", "blksize", "1024", "blksize", "2048"), Request{Op: OpRRQ, Name: "f", Mode: "octet", Blksize: 2048}},
		{"trailing NUL padding", append(rrq("f", "octet", "tsize", "0"), 0, 0, 0), Request{Op: OpRRQ, Name: "f", Mode: "octet", Tsize: true}},
		{"one NUL of padding", append(rrq("f", "octet"), 0), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
		{"multicast then padding", append(rrq("f", "octet", "multicast", ""), 0, 0), Request{Op: OpRRQ, Name: "f", Mode: "octet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.pkt)
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.pkt, err)
			}
			if got != tt.want {
				t.Errorf("ParseRequest(%q):\n got %+v\nwant %+v", tt.pkt, got, tt.want)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		code uint16
	}{
		{"empty", nil, ErrIllegalOp},
		{"one byte", []byte{0}, ErrIllegalOp},
		{"opcode only", []byte{0, 1}, ErrIllegalOp},
		{"data opcode", request(OpDATA, "f", "octet"), ErrIllegalOp},
		{"unknown opcode", request(99, "f", "octet"), ErrIllegalOp},
		{"no NUL at all", append([]byte{0, 1}, "f"...), ErrIllegalOp},
		{"mode without NUL", append(rrq("f"), "octet"...), ErrIllegalOp},
		{"value without NUL", append(rrq("f", "octet", "blksize"), "512"...), ErrIllegalOp},
		{"no mode", rrq("f"), ErrIllegalOp},
		{"empty mode", rrq("f", ""), ErrIllegalOp},
		{"mail mode", rrq("f", "mail"), ErrIllegalOp},
		{"NUL inside name", rrq("ipxe", ".efi", "octet"), ErrIllegalOp},
		{"odd option list", rrq("f", "octet", "blksize"), ErrIllegalOp},
		{"odd after pairs", rrq("f", "octet", "tsize", "0", "blksize"), ErrIllegalOp},
		{"empty option name", rrq("f", "octet", "", "1"), ErrIllegalOp},
		{"padding then option", append(append(rrq("f", "octet"), 0), "tsize\x000\x00"...), ErrIllegalOp},
		{"padding then garbage", append(append(rrq("f", "octet"), 0, 0), "x\x00"...), ErrIllegalOp},
		{"blksize not a number", rrq("f", "octet", "blksize", "big"), ErrBadOption},
		{"blksize empty", rrq("f", "octet", "blksize", "", "tsize", "0"), ErrBadOption},
		{"blksize signed", rrq("f", "octet", "blksize", "+512"), ErrBadOption},
		{"blksize negative", rrq("f", "octet", "blksize", "-1"), ErrBadOption},
		{"blksize hex", rrq("f", "octet", "blksize", "0x200"), ErrBadOption},
		{"blksize spaces", rrq("f", "octet", "blksize", " 512"), ErrBadOption},
		{"tsize overflow", rrq("f", "octet", "tsize", "99999999999999999999"), ErrBadOption},
		{"timeout not a number", rrq("f", "octet", "timeout", "1s"), ErrBadOption},
		{"empty name", rrq("", "octet"), ErrAccess},
		{"root", rrq("/", "octet"), ErrAccess},
		{"dot", rrq(".", "octet"), ErrAccess},
		{"dotdot", rrq("../x", "octet"), ErrAccess},
		{"rooted dotdot", rrq("/../x", "octet"), ErrAccess},
		{"deep dotdot", rrq("a/../../x", "octet"), ErrAccess},
		{"dotdot that stays inside", rrq("a/../x", "octet"), ErrAccess},
		{"backslash dotdot", rrq(`..\x`, "octet"), ErrAccess},
		{"mixed dotdot", rrq(`a\..\../x`, "octet"), ErrAccess},
		{"trailing dotdot", rrq("a/..", "octet"), ErrAccess},
		{"control character", rrq("a\nb", "octet"), ErrAccess},
		{"DEL", rrq("a\x7f", "octet"), ErrAccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.pkt)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("ParseRequest(%q) = %+v, %v; want an *Error with code %d", tt.pkt, got, err, tt.code)
			}
			if te.Code != tt.code {
				t.Errorf("ParseRequest(%q): code %d (%s), want %d", tt.pkt, te.Code, te.Msg, tt.code)
			}
			if got != (Request{}) {
				t.Errorf("ParseRequest(%q): request %+v with an error, want none", tt.pkt, got)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ipxe.efi", "ipxe.efi"},
		{"/ipxe.efi", "ipxe.efi"},
		{"///a//b", "a/b"},
		{"./a/./b/", "a/b"},
		{`a\b`, "a/b"},
		{"...", "..."},
		{"a..b/..c", "a..b/..c"},
		{"..", ""},
		{"", ""},
		{"/.", ""},
		{"a/../b", ""},
		{"a\x00b", ""},
	}
	for _, tt := range tests {
		got, err := CleanName(tt.in)
		if tt.want == "" {
			var te *Error
			if !errors.As(err, &te) || te.Code != ErrAccess {
				t.Errorf("CleanName(%q) = %q, %v; want an access violation", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"data", appendData(nil, 0x0102, []byte("abc")), []byte("\x00\x03\x01\x02abc")},
		{"empty data", appendData(nil, 7, nil), []byte("\x00\x03\x00\x07")},
		{"data appends", appendData([]byte("x"), 1, []byte("y")), []byte("x\x00\x03\x00\x01y")},
		{"ack", ackPacket(65535), []byte("\x00\x04\xff\xff")},
		{"error", errorPacket(ErrNotFound, "file not found"), []byte("\x00\x05\x00\x01file not found\x00")},
		{"error with NUL", errorPacket(ErrAccess, "a\x00b"), []byte("\x00\x05\x00\x02a\x00")},
		{"oack", oackPacket([]option{{"blksize", "1468"}, {"tsize", "42"}}), []byte("\x00\x06blksize\x001468\x00tsize\x0042\x00")},
		{"empty oack", oackPacket(nil), []byte("\x00\x06")},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want reply
		code uint16 // of the error, if any
	}{
		{"ack", []byte("\x00\x04\x12\x34"), reply{op: OpACK, block: 0x1234}, 0},
		{"ack with trailing bytes", []byte("\x00\x04\x00\x01xx"), reply{op: OpACK, block: 1}, 0},
		{"error", []byte("\x00\x05\x00\x08no thanks\x00"), reply{op: OpERROR, err: &Error{ErrBadOption, "no thanks"}}, 0},
		{"error without NUL", []byte("\x00\x05\x00\x00oops"), reply{op: OpERROR, err: &Error{ErrNotDefined, "oops"}}, 0},
		{"short", []byte("\x00\x04\x00"), reply{}, ErrIllegalOp},
		{"data", []byte("\x00\x03\x00\x01abc"), reply{}, ErrIllegalOp},
		{"rrq", rrq("f", "octet"), reply{}, ErrIllegalOp},
	}
	for _, tt := range tests {
		got, err := parseReply(tt.pkt)
		var code uint16
		if te := (*Error)(nil); errors.As(err, &te) {
			code = te.Code
		} else if err != nil {
			t.Errorf("%s: parseReply: %v is not an *Error", tt.name, err)
		}
		if code != tt.code || (tt.code == 0 && err != nil) {
			t.Errorf("%s: parseReply(%q): error %v, want code %d", tt.name, tt.pkt, err, tt.code)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseReply(%q) = %+v, want %+v", tt.name, tt.pkt, got, tt.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		size int64
		want plan
	}{
		{"no options", Request{}, 100, plan{blksize: 512}},
		{"blksize", Request{Blksize: 1024}, 100, plan{blksize: 1024, oack: []byte("\x00\x06blksize\x001024\x00")}},
		{"blksize clamped", Request{Blksize: 9000}, 100, plan{blksize: MaxBlksize, oack: []byte("\x00\x06blksize\x001468\x00")}},
		{"tsize", Request{Tsize: true}, 123456789, plan{blksize: 512, oack: []byte("\x00\x06tsize\x00123456789\x00")}},
		{"tsize of empty file", Request{Tsize: true}, 0, plan{blksize: 512, oack: []byte("\x00\x06tsize\x000\x00")}},
		{"all", Request{Blksize: 8, Timeout: 2, Tsize: true}, 5, plan{blksize: 8, timeout: 2,
			oack: []byte("\x00\x06blksize\x008\x00timeout\x002\x00tsize\x005\x00")}},
	}
	for _, tt := range tests {
		got := negotiate(tt.req, tt.size)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: negotiate(%+v, %d):\n got %+v\nwant %+v", tt.name, tt.req, tt.size, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	got := (&Error{ErrAccess, "read-only server"}).Error()
	if want := "tftp error 2: read-only server"; !strings.Contains(got, want) {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
