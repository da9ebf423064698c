package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/internal/testutil"
	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/host"
)

// testEnv is a server on 127.0.0.1:0 over a t.TempDir() root.
type testEnv struct {
	t       *testing.T
	root    string
	port    int
	keyFile string // the authorized client key (OpenSSH private key file)
	signer  ssh.Signer
	srv     *Server
	log     *testutil.LockedBuffer
	stop    func()
}

// newKey writes a new ed25519 client key into dir and returns its file and
// signer.
func newKey(t *testing.T, dir, name string) (string, ssh.Signer) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(k, name)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

type envOpts struct {
	cfg       Config
	rancherID int // uid and gid of rancher; -1: the test's own
	passwords PasswordChecker
	root      string // reuse a root (host key persistence)
}

func startServer(t *testing.T, o envOpts) *testEnv {
	t.Helper()
	e := &testEnv{t: t, root: o.root, log: &testutil.LockedBuffer{}}
	if e.root == "" {
		e.root = t.TempDir()
	}
	fsys := host.FS{Root: e.root}
	id := o.rancherID
	if id < 0 {
		id = os.Getuid()
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nrancher:x:%d:%d:rancher:/home/rancher:/bin/sh\n", id, id)
	if err := fsys.WriteFileAtomic("/etc/passwd", []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	seedRSAHostKey(t, fsys)
	keyDir := t.TempDir()
	e.keyFile, e.signer = newKey(t, keyDir, "id_ed25519")
	if err := fsys.WriteFileAtomic("/home/rancher/.ssh/authorized_keys", ssh.MarshalAuthorizedKey(e.signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = &Server{Config: o.cfg, FS: fsys, Host: host.Linux{}, Passwords: o.passwords, Log: e.log}
	if _, ok := o.passwords.(shadowOf); ok {
		e.srv.Passwords = Shadow{FS: fsys}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.log.String())
		}
	})
	return e
}

var testRSAKey struct {
	once sync.Once
	pem  []byte
	err  error
}

// seedRSAHostKey puts one RSA host key, made once per test binary, into a
// server root that has none: a 3072-bit key takes a second or more to make,
// and every test server would otherwise make its own.
func seedRSAHostKey(t *testing.T, fsys host.FS) {
	t.Helper()
	testRSAKey.once.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, RSAHostKeyBits)
		if err != nil {
			testRSAKey.err = err
			return
		}
		blk, err := ssh.MarshalPrivateKey(k, "keso test host key")
		testRSAKey.pem, testRSAKey.err = pem.EncodeToMemory(blk), err
	})
	if testRSAKey.err != nil {
		t.Fatal(testRSAKey.err)
	}
	p := path.Join(DefaultKeyDir, "ssh_host_rsa_key")
	if _, err := fsys.ReadFile(p); err == nil {
		return
	}
	if err := fsys.MkdirAll(DefaultKeyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFileAtomic(p, testRSAKey.pem, 0o600); err != nil {
		t.Fatal(err)
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIPPED: %s (openssh-client, installed by scripts/deps.sh) is not on PATH; the real-client tests cannot run", name)
	}
}

func (e *testEnv) sshArgs(key string) []string {
	return []string{
		"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
		"-i", key,
	}
}

// ssh runs the OpenSSH client with args after the host and returns stdout,
// stderr and the exit code.
func (e *testEnv) ssh(key, user string, extra []string, remote ...string) (string, string, int) {
	e.t.Helper()
	needTool(e.t, "ssh")
	args := append(e.sshArgs(key), "-p", strconv.Itoa(e.port))
	args = append(args, extra...)
	args = append(args, user+"@127.0.0.1")
	args = append(args, remote...)
	return runTool(e.t, "ssh", args, nil)
}

func runTool(t *testing.T, name string, args []string, stdin io.Reader) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out.String(), errb.String(), code
}

func TestExecOutputAndExitCodes(t *testing.T) {
	e := startServer(t, envOpts{rancherID: -1})
	for _, tc := range []struct {
		cmd        string
		out, errs  string
		wantStatus int
	}{
		{"echo hi", "hi\n", "", 0},
		{"exit 3", "", "", 3},
		{"echo oops >&2; false", "", "oops\n", 1},
		{"printf '%s|%s|%s|%s' \"$HOME\" \"$USER\" \"$SHELL\" \"$LOGNAME\"", "/home/rancher|rancher|/bin/sh|rancher", "", 0},
		{"echo $PATH", DefaultPath + "\n", "", 0},
		{"kill -TERM $$", "", "", 255}, // OpenSSH exits 255 on exit-signal
	} {
		out, errs, code := e.ssh(e.keyFile, "rancher", nil, tc.cmd)
		if out != tc.out || code != tc.wantStatus || (tc.errs != "" && errs != tc.errs) {
			t.Errorf("ssh %q: got out %q err %q status %d, want out %q err %q status %d", tc.cmd, out, errs, code, tc.out, tc.errs, tc.wantStatus)
		}
	}
	// SSH_CONNECTION and SSH_CLIENT as OpenSSH sets them: client address
	// and port, then (SSH_CONNECTION only) the server's.
	out, _, _ := e.ssh(e.keyFile, "rancher", nil, `echo "$SSH_CONNECTION|$SSH_CLIENT"`)
	f := strings.Split(strings.TrimSpace(out), "|")
	conn, client := strings.Fields(f[0]), strings.Fields(f[len(f)-1])
	if len(f) != 2 || len(conn) != 4 || conn[0] != "127.0.0.1" || conn[2] != "127.0.0.1" || conn[3] != strconv.Itoa(e.port) ||
		len(client) != 3 || client[0] != conn[0] || client[1] != conn[1] || client[2] != conn[3] {
		t.Errorf("SSH_CONNECTION|SSH_CLIENT = %q, want \"127.0.0.1 CPORT 127.0.0.1 %d|127.0.0.1 CPORT %d\"", out, e.port, e.port)
	}
	// stdin reaches the command and EOF ends it.
	needTool(t, "ssh")
	args := append(e.sshArgs(e.keyFile), "-p", strconv.Itoa(e.port), "rancher@127.0.0.1", "wc -c")
	out, _, code := runTool(t, "ssh", args, strings.NewReader("12345"))
	if strings.TrimSpace(out) != "5" || code != 0 {
		t.Errorf("ssh 'wc -c' <<< 12345: got %q status %d, want 5 status 0", out, code)
	}
}

func TestPTYSession(t *testing.T) {
	e := startServer(t, envOpts{rancherID: -1})
	out, errs, code := e.ssh(e.keyFile, "rancher", []string{"-tt"}, "tty; echo TERM=$TERM")
	if code != 0 || !strings.HasPrefix(out, "/dev/pts/") || !strings.Contains(out, "TERM=") {
		t.Errorf("ssh -tt tty: got %q (stderr %q) status %d, want /dev/pts/N and status 0", out, errs, code)
	}
	out, _, _ = e.ssh(e.keyFile, "rancher", nil, "tty")
	if !strings.Contains(out, "not a tty") {
		t.Errorf("ssh tty without -t: got %q, want \"not a tty\"", out)
	}
}

// dial is an x/crypto/ssh client connection to the test server.
func (e *testEnv) dial(user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.port), &ssh.ClientConfig{
		User: user, Auth: auth, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 20 * time.Second,
	})
}

func TestPTYWindowChange(t *testing.T) {
	needTool(t, "stty")
	e := startServer(t, envOpts{rancherID: -1})
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 40, 100, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	var out testutil.LockedBuffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("shell output %q: want it to contain %q", out.String(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fmt.Fprintln(in, "echo size=$(stty size) zero=$0")
	waitFor("size=40 100 zero=/bin/sh")
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	// A window change is a channel request the server handles beside the
	// stdin stream, so a command already on its way may still see the old
	// size: ask again until the new one shows (as a terminal redraws).
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "size=50 120") {
		if time.Now().After(deadline) {
			t.Fatalf("shell output %q: the window change to 50x120 never reached the terminal", out.String())
		}
		fmt.Fprintln(in, "echo size=$(stty size)")
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Fprintln(in, "exit 7")
	err = s.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Errorf("shell exit: got %v, want exit status 7", err)
	}
}

func TestSFTPAndSCP(t *testing.T) {
	needTool(t, "sftp")
	needTool(t, "scp")
	e := startServer(t, envOpts{rancherID: -1})
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := make([]byte, 300<<10)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	remote := t.TempDir()
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/up.bin\nget %s/up.bin %s/down.bin\nls %s\n", src, remote, remote, dir, remote)), 0o644)
	args := append(e.sshArgs(e.keyFile), "-P", strconv.Itoa(e.port), "-b", batch, "rancher@127.0.0.1")
	out, errs, code := runTool(t, "sftp", args, nil)
	if code != 0 {
		t.Fatalf("sftp: status %d, out %q, err %q", code, out, errs)
	}
	for _, p := range []string{filepath.Join(remote, "up.bin"), filepath.Join(dir, "down.bin")} {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("sftp: %s: got %d bytes (err %v), want the %d bytes put", p, len(got), err, len(data))
		}
	}

	// scp (SFTP protocol, OpenSSH ≥ 9.0 default) both ways.
	args = append(e.sshArgs(e.keyFile), "-P", strconv.Itoa(e.port), src, "rancher@127.0.0.1:"+remote+"/scp.bin")
	if out, errs, code := runTool(t, "scp", args, nil); code != 0 {
		t.Fatalf("scp up: status %d, out %q, err %q", code, out, errs)
	}
	args = append(e.sshArgs(e.keyFile), "-P", strconv.Itoa(e.port), "rancher@127.0.0.1:"+remote+"/scp.bin", dir+"/scp-back.bin")
	if out, errs, code := runTool(t, "scp", args, nil); code != 0 {
		t.Fatalf("scp down: status %d, out %q, err %q", code, out, errs)
	}
	for _, p := range []string{filepath.Join(remote, "scp.bin"), filepath.Join(dir, "scp-back.bin")} {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("scp: %s: got %d bytes (err %v), want the %d bytes sent", p, len(got), err, len(data))
		}
	}
}

func TestLocalForward(t *testing.T) {
	needTool(t, "ssh")
	e := startServer(t, envOpts{rancherID: -1})
	target := pongServer(t)
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	lport := free.Addr().(*net.TCPAddr).Port
	free.Close()
	args := append(e.sshArgs(e.keyFile), "-p", strconv.Itoa(e.port), "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, target.Addr()), "rancher@127.0.0.1")
	cmd := exec.Command("ssh", args...)
	var errb testutil.LockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := ping(fmt.Sprintf("127.0.0.1:%d", lport), 30*time.Second); err != nil {
		t.Fatalf("ssh -L: no answer through the tunnel: %v (ssh: %s)", err, errb.String())
	}
}

func TestAuthRejections(t *testing.T) {
	e := startServer(t, envOpts{rancherID: -1})
	wrongFile, wrong := newKey(t, t.TempDir(), "wrong")
	if _, errs, code := e.ssh(wrongFile, "rancher", nil, "echo in"); code != 255 || !strings.Contains(errs, "Permission denied") {
		t.Errorf("ssh with an unknown key: got status %d stderr %q, want 255 and Permission denied", code, errs)
	}
	if _, err := e.dial("rancher", ssh.PublicKeys(wrong)); err == nil {
		t.Errorf("x/crypto client with an unknown key: logged in, want refused")
	}
	// Password auth is off by default: not even offered.
	if _, err := e.dial("rancher", ssh.Password("rancher")); err == nil || !strings.Contains(err.Error(), "[none]") {
		t.Errorf("password login with password_auth off: got %v, want refused with no password method offered", err)
	}
	// root may not log in without root_login, even with rancher's key.
	if _, errs, code := e.ssh(e.keyFile, "root", nil, "echo in"); code != 255 {
		t.Errorf("ssh root@ without root_login: got status %d stderr %q, want 255", code, errs)
	}
	if _, err := e.dial("nobody", ssh.PublicKeys(e.signer)); err == nil {
		t.Errorf("login as an unknown user: got in, want refused")
	}
	// A key with options is refused, with a console line.
	opts := append([]byte(`command="/bin/true" `), ssh.MarshalAuthorizedKey(wrong.PublicKey())...)
	e.srv.FS.WriteFileAtomic("/home/rancher/.ssh/authorized_keys", opts, 0o600)
	if _, err := e.dial("rancher", ssh.PublicKeys(wrong)); err == nil {
		t.Errorf("key with command= option: logged in, want refused")
	}
	if !strings.Contains(e.log.String(), "does not interpret") {
		t.Errorf("log %q: want a line about the refused key with options", e.log.String())
	}
}

type fakePasswords map[string]string

func (f fakePasswords) CheckPassword(user, pw string) error {
	if want, ok := f[user]; ok && want == pw {
		return nil
	}
	return errors.New("wrong password")
}

func TestPasswordAuth(t *testing.T) {
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{PasswordAuth: true}, passwords: fakePasswords{"rancher": "s3cret"}})
	c, err := e.dial("rancher", ssh.Password("s3cret"))
	if err != nil {
		t.Fatalf("password login with the right password: %v", err)
	}
	c.Close()
	if _, err := e.dial("rancher", ssh.Password("nope")); err == nil {
		t.Errorf("password login with a wrong password: got in, want refused")
	}
	// Asked for, but no checker: public keys only, and the console says why.
	e2 := startServer(t, envOpts{rancherID: -1, cfg: Config{PasswordAuth: true}})
	if _, err := e2.dial("rancher", ssh.Password("s3cret")); err == nil {
		t.Errorf("password login without a checker: got in, want refused")
	}
	if !strings.Contains(e2.log.String(), "no password checker") {
		t.Errorf("log %q: want the line saying password logins are refused", e2.log.String())
	}
}

func TestRootLogin(t *testing.T) {
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{RootLogin: true}})
	out, errs, code := e.ssh(e.keyFile, "root", nil, "echo $USER $HOME")
	if code != 0 || out != "root /root\n" {
		t.Errorf("ssh root@ with root_login and rancher's key: got %q %q status %d, want \"root /root\"", out, errs, code)
	}
}

func TestHostKeysKeptAcrossRestarts(t *testing.T) {
	root := t.TempDir()
	fingerprints := func() []string {
		e := startServer(t, envOpts{rancherID: -1, root: root})
		var fps []string
		c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		for _, k := range e.srv.HostKeys() {
			fps = append(fps, ssh.FingerprintSHA256(k))
		}
		e.stop()
		e.stop = nil
		return fps
	}
	first, second := fingerprints(), fingerprints()
	if len(first) != 2 || strings.Join(first, ",") != strings.Join(second, ",") {
		t.Errorf("host keys: first start %v, second start %v; want the same two keys", first, second)
	}
	fi, err := os.Stat(filepath.Join(root, DefaultKeyDir, "ssh_host_ed25519_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ed25519 host key file: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	// The OpenSSH client sees the key stored in the .pub file.
	needTool(t, "ssh-keyscan")
	e := startServer(t, envOpts{rancherID: -1, root: root})
	out, _, _ := runTool(t, "ssh-keyscan", []string{"-p", strconv.Itoa(e.port), "-t", "ed25519", "127.0.0.1"}, nil)
	pub, _ := os.ReadFile(filepath.Join(root, DefaultKeyDir, "ssh_host_ed25519_key.pub"))
	if f := strings.Fields(string(pub)); len(f) < 2 || !strings.Contains(out, f[1]) {
		t.Errorf("ssh-keyscan: got %q, want the key in ssh_host_ed25519_key.pub (%q)", out, pub)
	}
}

func TestCorruptHostKeyReplaced(t *testing.T) {
	fsys := host.FS{Root: t.TempDir()}
	if err := fsys.WriteFileAtomic("/k/ssh_host_ed25519_key", []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var notes []string
	keys, err := HostKeys(fsys, "/k", func(a, f, d string) { notes = append(notes, a+" "+f) })
	if err != nil || len(keys) != 2 {
		t.Fatalf("HostKeys: %d keys, %v; want 2 keys", len(keys), err)
	}
	want := []string{"replace /k/ssh_host_ed25519_key", "generate /k/ssh_host_ed25519_key", "generate /k/ssh_host_rsa_key"}
	if strings.Join(notes, ";") != strings.Join(want, ";") {
		t.Errorf("notes: got %q, want %q", notes, want)
	}
	if b, err := fsys.ReadFile("/k/ssh_host_ed25519_key.bad"); err != nil || string(b) != "garbage" {
		t.Errorf("the unreadable key was not kept as .bad: %q %v", b, err)
	}
}

// TestRunsAsUser needs root: rancher is uid 1000 and the command must run
// with that uid, gid and groups.
func TestRunsAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: switching to uid 1000 needs root (CI runs as root)")
	}
	e := startServer(t, envOpts{rancherID: 1000})
	e.srv.FS.WriteFileAtomic("/etc/group", []byte("rancher:x:1000:\ndocker:x:999:rancher\n"), 0o644)
	out, errs, code := e.ssh(e.keyFile, "rancher", nil, "id -u; id -g; id -G; pwd")
	if code != 0 || out != "1000\n1000\n1000 999\n/\n" {
		t.Errorf("ssh id as rancher (uid 1000): got %q %q status %d, want 1000, 1000, groups 1000 999, cwd /", out, errs, code)
	}
	// In-process SFTP would run with the server's privileges: refused
	// without a helper command.
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	if err := s.RequestSubsystem("sftp"); err == nil {
		t.Errorf("sftp as uid 1000 without SFTPCommand: accepted, want refused")
	}

	// With the helper (this test binary re-executed, see TestMain) files
	// are written as rancher.
	needTool(t, "sftp")
	bin := t.TempDir()
	os.Chmod(bin, 0o755)
	os.Chmod(filepath.Dir(bin), 0o755)
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(bin, "sftp-helper")
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	e.srv.SFTPCommand = []string{helper, sftpHelperArg}
	remote := filepath.Join(bin, "drop")
	os.Mkdir(remote, 0o777)
	os.Chmod(remote, 0o777)
	src := filepath.Join(bin, "src")
	os.WriteFile(src, []byte("payload"), 0o644)
	batch := filepath.Join(bin, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/up\nput %s /etc/keso-sftp-must-fail\n", src, remote, src)), 0o644)
	args := append(e.sshArgs(e.keyFile), "-P", strconv.Itoa(e.port), "-b", batch, "rancher@127.0.0.1")
	_, errs, _ = runTool(t, "sftp", args, nil)
	fi, err := os.Stat(filepath.Join(remote, "up"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("sftp put as rancher through the helper: %v (sftp: %s); want a file owned by uid 1000", err, errs)
	}
	if _, err := os.Stat("/etc/keso-sftp-must-fail"); err == nil {
		os.Remove("/etc/keso-sftp-must-fail")
		t.Errorf("sftp as rancher wrote /etc: the helper kept root's privileges")
	}
}

// TestOtherAccountLogsIn: an account a config adds to /etc/passwd logs in
// with the keys in its own home, as itself; rancher's keys do not let it
// in, and a name with no account is refused.
func TestOtherAccountLogsIn(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: switching to uid 1001 needs root (CI runs as root)")
	}
	e := startServer(t, envOpts{rancherID: 1000})
	passwd, _ := e.srv.FS.ReadFile("/etc/passwd")
	e.srv.FS.WriteFileAtomic("/etc/passwd", append(passwd, "bob:x:1001:1001:bob:/home/bob:/bin/sh\n"...), 0o644)
	if _, err := e.dial("bob", ssh.PublicKeys(e.signer)); err == nil {
		t.Errorf("bob with rancher's key: logged in, want refused (bob has no keys yet)")
	}
	bobFile, bob := newKey(t, t.TempDir(), "id_bob")
	e.srv.FS.WriteFileAtomic("/home/bob/.ssh/authorized_keys", ssh.MarshalAuthorizedKey(bob.PublicKey()), 0o600)
	out, errs, code := e.ssh(bobFile, "bob", nil, "id -u; id -g")
	if got, want := out, "1001\n1001\n"; code != 0 || got != want {
		t.Errorf("ssh bob@ id: got %q %q status %d, want %q", got, errs, code, want)
	}
	if _, err := e.dial("carol", ssh.PublicKeys(bob)); err == nil {
		t.Errorf("login as carol, who has no account: got in, want refused")
	}
}

const sftpHelperArg = "keso-test-sftp-server"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sftpHelperArg {
		os.Exit(SFTPMain())
	}
	os.Exit(m.Run())
}

func TestShadowPasswords(t *testing.T) {
	fsys := host.FS{Root: t.TempDir()}
	h, err := crypt.Hash("pa55")
	if err != nil {
		t.Fatal(err)
	}
	fsys.WriteFileAtomic("/etc/shadow", []byte("root:*:1::::::\nrancher:"+h+":19000:0:99999:7:::\nlocked:!"+h+":1::::::\n"), 0o600)
	sh := Shadow{FS: fsys}
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"rancher", "pa55", true},
		{"rancher", "pa56", false},
		{"root", "", false},
		{"locked", "pa55", false},
		{"ghost", "pa55", false},
	} {
		if err := sh.CheckPassword(tc.user, tc.pw); (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q, %q): got %v, want ok=%v", tc.user, tc.pw, err, tc.ok)
		}
	}
	// Through the server, with the shadow file of its own root.
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{PasswordAuth: true}, passwords: shadowOf{}})
	e.srv.FS.WriteFileAtomic("/etc/shadow", []byte("rancher:"+h+":19000:0:99999:7:::\n"), 0o600)
	c, err := e.dial("rancher", ssh.Password("pa55"))
	if err != nil {
		t.Fatalf("password login against /etc/shadow: %v", err)
	}
	c.Close()
}

// shadowOf is replaced by the server's own Shadow in startServer.
type shadowOf struct{}

func (shadowOf) CheckPassword(string, string) error { return errors.New("placeholder") }
