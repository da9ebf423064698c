package tftp

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRequest: any packet is refused with an *Error the server can
// send, or is a well-formed request whose name is clean and inside the
// root: fs.ValidPath, not the root itself, no "..", backslash or control
// character, and unchanged by CleanName; its mode and options are in
// range, and encoding it again parses to the same request.
func FuzzParseRequest(f *testing.F) {
	for _, b := range [][]byte{
		rrq("ipxe.efi", "octet"),
		rrq("undionly.kpxe", "octet", "tsize", "0"),
		rrq("/boot/ipxe.efi", "octet", "blksize", "1468", "tsize", "0"),
		rrq("ipxe.efi", "octet", "blksize", "1432", "tsize", "0", "timeout", "6"), // curl's
		rrq("pxelinux.cfg/default", "netascii", "blksize", "65464"),
		rrq(`boot\x86\wdsnbp.com`, "OCTET", "windowsize", "8", "multicast", ""),
		append(rrq("a", "octet", "tsize", "0"), 0, 0),
		rrq("a/../../etc/passwd", "octet"),
		request(OpWRQ, "upload", "octet", "tsize", "1234"),
		rrq("f", "octet", "blksize"),
		[]byte("\x00\x01f\x00octet"),
		nil,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Code > ErrBadOption {
				t.Fatalf("ParseRequest(%q): %v, want an *Error with a TFTP code", b, err)
			}
			if r != (Request{}) {
				t.Fatalf("ParseRequest(%q) = %+v with error %v", b, r, err)
			}
			return
		}
		if r.Op != OpRRQ && r.Op != OpWRQ {
			t.Errorf("ParseRequest(%q): opcode %d", b, r.Op)
		}
		if r.Mode != "octet" && r.Mode != "netascii" {
			t.Errorf("ParseRequest(%q): mode %q", b, r.Mode)
		}
		if r.Blksize != 0 && (r.Blksize < 8 || r.Blksize > 65464) || r.Timeout != 0 && (r.Timeout < 1 || r.Timeout > 255) {
			t.Errorf("ParseRequest(%q): options out of range: %+v", b, r)
		}
		if p := negotiate(r, 1<<40); p.blksize < 8 || p.blksize > MaxBlksize {
			t.Errorf("negotiate(%+v): blksize %d", r, p.blksize)
		}
		n := r.Name
		if !fs.ValidPath(n) || n == "." || strings.ContainsAny(n, "\\\x00") || strings.Contains("/"+n+"/", "/../") {
			t.Fatalf("ParseRequest(%q): name %q is not clean", b, n)
		}
		for _, c := range []byte(n) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("ParseRequest(%q): name %q has a control character", b, n)
			}
		}
		if again, err := CleanName(n); err != nil || again != n {
			t.Errorf("CleanName(%q) = %q, %v; want it unchanged", n, again, err)
		}
		// Encode it again: the same request.
		fields := []string{r.Name, r.Mode}
		if r.Blksize != 0 {
			fields = append(fields, "blksize", strconv.Itoa(r.Blksize))
		}
		if r.Timeout != 0 {
			fields = append(fields, "timeout", strconv.Itoa(r.Timeout))
		}
		if r.Tsize {
			fields = append(fields, "tsize", "0")
		}
		if again, err := ParseRequest(request(r.Op, fields...)); err != nil || again != r {
			t.Errorf("re-encoded %+v parses to %+v, %v", r, again, err)
		}
	})
}
