package tftp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests here run real TFTP clients against the server on 127.0.0.1:
// tftp-hpa's (what CI installs; its 5.2 client sends no options at all),
// curl's (blksize, tsize and timeout) and busybox's (blksize and tsize).

// realFiles is what the real clients fetch.
func realFiles() files {
	return files{
		"hello":              []byte("hello, PXE\n"),
		"ipxe.efi":           randomBytes(1<<20 + 17),
		"boot/undionly.kpxe": randomBytes(70000),
		"exact":              randomBytes(4 * 512),
		"exact1024":          randomBytes(3 * 1024),
		"empty":              nil,
	}
}

// realCase is one fetch by a real client: want is the file it should get
// ("" for an error), wantOut what its output should then say.
type realCase struct {
	name    string
	get     string
	want    string
	wantOut string
	args    []string // extra arguments
	blksize int      // the Transfer's, 0 for 512
}

// runReal runs each case's command (built by cmd, writing to out) and
// checks the file it wrote and the Transfer.
func runReal(t *testing.T, ts *testServer, fsys files, tests []realCase, cmd func(tc realCase, out string) []string) {
	t.Helper()
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strconv.Itoa(i))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			argv := cmd(tc, out)
			output, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			tr := ts.transfer(t)
			if tc.want == "" {
				if !strings.Contains(string(output), tc.wantOut) {
					t.Errorf("%q: output %q, want %q in it", argv, output, tc.wantOut)
				}
				if tr.Err == nil {
					t.Errorf("Transfer.Err is nil, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v\n%s", argv, err, output)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, fsys[tc.want]) {
				t.Errorf("%q: got %d bytes, want the %d of %s\n%s", argv, len(got), len(fsys[tc.want]), tc.want, output)
			}
			blksize := tc.blksize
			if blksize == 0 {
				blksize = 512
			}
			if tr.Err != nil || tr.Name != tc.want || tr.Bytes != int64(len(got)) || tr.Blksize != blksize {
				t.Errorf("Transfer = %+v, want %s, %d bytes, blksize %d, no error", tr, tc.want, len(got), blksize)
			}
		})
	}
}

// lookClient finds a client binary or skips the test, loudly.
func lookClient(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIPPED: no %s client to test the server against (%v); install %s", name, err, install)
	}
	return p
}

func TestRealTFTPHPA(t *testing.T) {
	const bin = "/usr/bin/tftp"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("SKIPPED: the tests against the real tftp-hpa client need %s (apt-get install tftp-hpa): %v", bin, err)
	}
	fsys := realFiles()
	fsys["big"] = randomBytes(65536*512 + 100) // past 65535 blocks: the block number wraps to 0
	ts := newServer(t, fsys, nil)
	port := strconv.Itoa(ts.addr.Port)
	// tftp-hpa exits 0 even on an error: the output tells.
	runReal(t, ts, fsys, []realCase{
		{name: "plain", get: "hello", want: "hello"},
		{name: "1 MiB", get: "ipxe.efi", want: "ipxe.efi"},
		{name: "absolute path", get: "/boot/undionly.kpxe", want: "boot/undionly.kpxe"},
		{name: "exact multiple of 512", get: "exact", want: "exact"},
		{name: "empty", get: "empty", want: "empty"},
		// No CR in the file: tftp-hpa would translate CR LF and CR NUL.
		{name: "netascii served as octet", get: "hello", want: "hello", args: []string{"-m", "netascii"}},
		{name: "block number wrap", get: "big", want: "big"},
		{name: "missing", get: "nope", wantOut: "Error code 1: file not found"},
		{name: "outside the root", get: "../etc/passwd", wantOut: "Error code 2: file name outside the root"},
		{name: "outside the root, deeper", get: "boot/../../x", wantOut: "Error code 2: file name outside the root"},
	}, func(tc realCase, out string) []string {
		args := append([]string{bin, "-v", "-m", "binary"}, tc.args...)
		return append(args, "127.0.0.1", port, "-c", "get", tc.get, out)
	})
}

func TestRealCurl(t *testing.T) {
	bin := lookClient(t, "curl", "curl (built with TFTP)")
	if out, err := exec.Command(bin, "-V").Output(); err != nil || !strings.Contains(string(out), " tftp") {
		t.Skipf("SKIPPED: %s has no TFTP support (%v): %s", bin, err, out)
	}
	fsys := realFiles()
	ts := newServer(t, fsys, nil)
	url := "tftp://127.0.0.1:" + strconv.Itoa(ts.addr.Port) + "/"
	// curl asks for tsize and timeout, and blksize when told to.
	runReal(t, ts, fsys, []realCase{
		{name: "plain", get: "hello", want: "hello"},
		{name: "no options", get: "ipxe.efi", want: "ipxe.efi", args: []string{"--tftp-no-options"}},
		{name: "blksize 1024", get: "ipxe.efi", want: "ipxe.efi", args: []string{"--tftp-blksize", "1024"}, blksize: 1024},
		{name: "blksize 1024, exact multiple", get: "exact1024", want: "exact1024", args: []string{"--tftp-blksize", "1024"}, blksize: 1024},
		{name: "blksize clamped", get: "boot/undionly.kpxe", want: "boot/undionly.kpxe", args: []string{"--tftp-blksize", "65464"}, blksize: MaxBlksize},
		{name: "blksize 8", get: "hello", want: "hello", args: []string{"--tftp-blksize", "8"}, blksize: 8},
		// curl 7.88 takes the OACK's tsize 0 of an empty file for an
		// invalid value (RFC 2349 has no such rule), so no options here.
		{name: "empty", get: "empty", want: "empty", args: []string{"--tftp-no-options"}},
		// curl's error messages are garbled (getpeername...), its exit
		// codes are right: 68 file not found, 69 permission problem.
		{name: "missing", get: "nope", wantOut: "curl: (68)"},
		{name: "outside the root", get: "../etc/passwd", wantOut: "curl: (69)"},
	}, func(tc realCase, out string) []string {
		args := append([]string{bin, "-sS", "--path-as-is", "-o", out}, tc.args...)
		return append(args, url+tc.get)
	})
}

func TestRealBusybox(t *testing.T) {
	bin := lookClient(t, "busybox", "busybox")
	if out, _ := exec.Command(bin, "tftp").CombinedOutput(); !strings.Contains(string(out), "-b SIZE") {
		t.Skipf("SKIPPED: %s tftp has no blksize support: %s", bin, out)
	}
	fsys := realFiles()
	ts := newServer(t, fsys, nil)
	port := strconv.Itoa(ts.addr.Port)
	// busybox asks for tsize, and blksize when told to.
	runReal(t, ts, fsys, []realCase{
		{name: "plain", get: "ipxe.efi", want: "ipxe.efi"},
		{name: "blksize 1468", get: "ipxe.efi", want: "ipxe.efi", args: []string{"-b", "1468"}, blksize: 1468},
		{name: "blksize 1024, exact multiple", get: "exact1024", want: "exact1024", args: []string{"-b", "1024"}, blksize: 1024},
		{name: "missing", get: "nope", wantOut: "file not found"},
	}, func(tc realCase, out string) []string {
		args := append([]string{bin, "tftp", "-g", "-r", tc.get, "-l", out}, tc.args...)
		return append(args, "127.0.0.1", port)
	})
}
