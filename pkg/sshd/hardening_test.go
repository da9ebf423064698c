package sshd

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/keso-os/keso/internal/testutil"
	"github.com/keso-os/keso/pkg/cloudconfig"
)

// clientRun is one run of an OpenSSH client program (ssh, sftp, scp).
type clientRun struct {
	args []string
	env  []string // added to the test's environment
}

// run runs it with a time bound and returns stdout, stderr and the exit
// status.
func (r clientRun) run(t *testing.T, name string) (string, string, int) {
	t.Helper()
	needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, r.args...)
	cmd.Env = append(os.Environ(), r.env...)
	var out, errb testutil.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, r.args, err)
	}
	return out.String(), errb.String(), 0
}

// baseArgs are the client options every run here uses: no config file, no
// known hosts, no agent.
func (e *testEnv) baseArgs() []string {
	return []string{
		"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentityAgent=none", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
		"-p", strconv.Itoa(e.port),
	}
}

// keyLogin is `ssh` with public keys only, offered in order.
func (e *testEnv) keyLogin(user string, keys []string, remote ...string) clientRun {
	return e.keyLoginOpts(user, keys, nil, remote...)
}

// keyLoginOpts is keyLogin with more client options; they come first, as
// the first value of an option is the one ssh keeps (LogLevel=INFO over
// baseArgs' ERROR).
func (e *testEnv) keyLoginOpts(user string, keys, opts []string, remote ...string) clientRun {
	args := append(append(append([]string{}, opts...), e.baseArgs()...), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey")
	for _, k := range keys {
		args = append(args, "-i", k)
	}
	return clientRun{args: append(append(args, user+"@127.0.0.1"), remote...)}
}

// passwordLogin is `ssh` with a password only, given by an SSH_ASKPASS
// script (BatchMode would turn password prompts off).
func (e *testEnv) passwordLogin(t *testing.T, user, password string, remote ...string) clientRun {
	t.Helper()
	script := filepath.Join(t.TempDir(), "askpass")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' '"+password+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	args := append(e.baseArgs(), "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
		"-o", "NumberOfPasswordPrompts=1", user+"@127.0.0.1")
	return clientRun{args: append(args, remote...), env: []string{"SSH_ASKPASS=" + script, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}}
}

// TestRealClientRefusals: what the OpenSSH client may and may not log in
// with, for each of the server's log-in settings.
func TestRealClientRefusals(t *testing.T) {
	needTool(t, "ssh")
	keyDir := t.TempDir()
	var wrong []string
	for i := range 4 {
		f, _ := newKey(t, keyDir, fmt.Sprintf("wrong%d", i))
		wrong = append(wrong, f)
	}
	pw := fakePasswords{"rancher": "s3cret", "root": "s3cret"}
	tests := []struct {
		name    string
		cfg     Config
		login   func(e *testEnv) clientRun
		wantIn  bool
		wantErr string // in ssh's stderr when refused
	}{
		{"right key", Config{}, func(e *testEnv) clientRun { return e.keyLogin("rancher", []string{e.keyFile}, "echo in") }, true, ""},
		{"wrong key", Config{}, func(e *testEnv) clientRun { return e.keyLogin("rancher", wrong[:1], "echo in") }, false, "Permission denied (publickey)"},
		{"password with password_auth off", Config{}, func(e *testEnv) clientRun { return e.passwordLogin(t, "rancher", "s3cret", "echo in") }, false, "Permission denied (publickey)"},
		{"password with password_auth on", Config{PasswordAuth: true}, func(e *testEnv) clientRun { return e.passwordLogin(t, "rancher", "s3cret", "echo in") }, true, ""},
		{"wrong password", Config{PasswordAuth: true}, func(e *testEnv) clientRun { return e.passwordLogin(t, "rancher", "guess", "echo in") }, false, "Permission denied"},
		{"root with root_login off", Config{}, func(e *testEnv) clientRun { return e.keyLogin("root", []string{e.keyFile}, "echo in") }, false, "Permission denied (publickey)"},
		{"root password with root_login off", Config{PasswordAuth: true}, func(e *testEnv) clientRun { return e.passwordLogin(t, "root", "s3cret", "echo in") }, false, "Permission denied"},
		{"root with root_login on", Config{RootLogin: true}, func(e *testEnv) clientRun { return e.keyLogin("root", []string{e.keyFile}, "echo in") }, true, ""},
		{"unknown user", Config{}, func(e *testEnv) clientRun { return e.keyLogin("nobody", []string{e.keyFile}, "echo in") }, false, "Permission denied (publickey)"},
		{"unknown user, password", Config{PasswordAuth: true}, func(e *testEnv) clientRun { return e.passwordLogin(t, "nobody", "s3cret", "echo in") }, false, "Permission denied"},
		// Four wrong keys, then the right one: within the default six
		// tries, and over a limit of two (x/crypto gives offered keys a
		// budget of max_auth_tries first, then counts them).
		{"wrong keys first, default max_auth_tries", Config{}, func(e *testEnv) clientRun {
			return e.keyLogin("rancher", append(wrong[:4:4], e.keyFile), "echo in")
		}, true, ""},
		{"wrong keys first, max_auth_tries 2", Config{MaxAuthTries: 2}, func(e *testEnv) clientRun {
			return e.keyLogin("rancher", append(wrong[:4:4], e.keyFile), "echo in")
		}, false, "too many authentication failures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, envOpts{rancherID: -1, cfg: tt.cfg, passwords: pw})
			out, errs, code := tt.login(e).run(t, "ssh")
			gotIn := code == 0 && out == "in\n"
			if gotIn != tt.wantIn {
				t.Fatalf("got logged in=%v (status %d, out %q, stderr %q), want logged in=%v", gotIn, code, out, errs, tt.wantIn)
			}
			if !tt.wantIn && (code != 255 || !strings.Contains(errs, tt.wantErr)) {
				t.Errorf("got status %d stderr %q, want 255 and %q", code, errs, tt.wantErr)
			}
		})
	}
}

// halfOpen connects and reads the server's banner, then sends nothing:
// an unauthenticated connection that holds a max_startups slot.
func halfOpen(t *testing.T, port int) (net.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("no banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-keso") {
		c.Close()
		return nil, fmt.Errorf("banner %q, want SSH-2.0-keso", line)
	}
	return c, nil
}

// loginWithin retries a real ssh login until it works or d has passed.
func loginWithin(t *testing.T, e *testEnv, d time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	for {
		out, errs, code := e.keyLogin("rancher", []string{e.keyFile}, "echo in").run(t, "ssh")
		if code == 0 && out == "in\n" {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return 0, fmt.Errorf("ssh: status %d, out %q, stderr %q", code, out, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMaxStartupsAndLoginGraceTime fills max_startups with connections
// that never send a banner: more connections are closed at once (the
// count stays bounded while they hang), a real login is refused, and it
// works again once they are closed, or once login_grace_time has closed
// them.
func TestMaxStartupsAndLoginGraceTime(t *testing.T) {
	needTool(t, "ssh")
	const startups, grace = 3, 4 * time.Second
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{MaxStartups: startups, LoginGraceTime: grace}})
	fill := func() []net.Conn {
		t.Helper()
		var held []net.Conn
		for i := range startups {
			c, err := halfOpen(t, e.port)
			if err != nil {
				t.Fatalf("half-open connection %d of %d (max_startups %d): %v, want the server's banner", i+1, startups, startups, err)
			}
			held = append(held, c)
		}
		return held
	}
	held := fill()
	opened := time.Now()
	// While they hang, every further connection is closed without a banner.
	for i := range 10 {
		if c, err := halfOpen(t, e.port); err == nil {
			c.Close()
			t.Fatalf("connection %d over max_startups %d: got the banner, want it closed at once", i+1, startups)
		}
	}
	if _, errs, code := e.keyLogin("rancher", []string{e.keyFile}, "echo in").run(t, "ssh"); code == 0 {
		t.Errorf("ssh with max_startups (%d) full: logged in, want refused", startups)
	} else if !strings.Contains(errs, "Connection closed") && !strings.Contains(errs, "Connection reset") {
		t.Errorf("ssh with max_startups full: stderr %q, want the connection closed", errs)
	}
	if time.Since(opened) < grace && !strings.Contains(e.log.String(), "max_startups") {
		t.Errorf("log %q: want a line about connections refused over max_startups", e.log.String())
	}
	// Closing one frees its slot.
	held[0].Close()
	if took, err := loginWithin(t, e, 10*time.Second); err != nil {
		t.Errorf("ssh after closing one half-open connection: %v, want logged in", err)
	} else {
		t.Logf("ssh logged in %s after a slot was freed", took.Round(time.Millisecond))
	}
	for _, c := range held[1:] {
		c.Close()
	}

	// Left open, they are closed by the server after login_grace_time.
	held = fill()
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	start := time.Now()
	for i, c := range held {
		c.SetReadDeadline(time.Now().Add(grace + 10*time.Second))
		n, err := c.Read(make([]byte, 1))
		if err == nil || n != 0 {
			t.Fatalf("half-open connection %d: read %d bytes, %v; want it closed by the server", i, n, err)
		}
	}
	if took := time.Since(start); took < grace-time.Second || took > grace+5*time.Second {
		t.Errorf("half-open connections closed after %s, want about login_grace_time (%s)", took, grace)
	}
	if !strings.Contains(e.log.String(), "login_grace_time") {
		t.Errorf("log %q: want a line about connections closed after login_grace_time", e.log.String())
	}
	if _, err := loginWithin(t, e, 10*time.Second); err != nil {
		t.Errorf("ssh after login_grace_time closed the half-open connections: %v, want logged in", err)
	}
}

// TestLoginGraceTimeDefault: without the setting, a connection that never
// logs in is not closed before 2 minutes (checked without waiting them).
func TestLoginGraceTimeDefault(t *testing.T) {
	for _, tc := range []struct {
		cfg           Config
		grace         time.Duration
		tries, starts int
	}{
		{Config{}, 2 * time.Minute, 6, 10},
		{Config{LoginGraceTime: time.Second, MaxAuthTries: 3, MaxStartups: 1}, time.Second, 3, 1},
	} {
		if g, a, s := tc.cfg.loginGraceTime(), tc.cfg.maxAuthTries(), tc.cfg.maxStartups(); g != tc.grace || a != tc.tries || s != tc.starts {
			t.Errorf("%+v: got grace %s, tries %d, startups %d; want %s, %d, %d", tc.cfg, g, a, s, tc.grace, tc.tries, tc.starts)
		}
	}
}

// TestIdleTimeout: with idle_timeout, a session that carries nothing
// either way is closed; one that keeps printing is not.
func TestIdleTimeout(t *testing.T) {
	needTool(t, "ssh")
	const idle = 1500 * time.Millisecond
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{IdleTimeout: idle}})
	for _, tc := range []struct {
		name       string
		remote     string
		wantStatus int
		wantOut    string
		minT, maxT time.Duration
	}{
		{"silent command closed", "sleep 30; echo done", 255, "", idle, idle + 8*time.Second},
		{"busy command kept", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.4; done; echo done", 0, "done\n", 4 * time.Second, 30 * time.Second},
	} {
		start := time.Now()
		out, errs, code := e.keyLogin("rancher", []string{e.keyFile}, tc.remote).run(t, "ssh")
		took := time.Since(start)
		if code != tc.wantStatus || !strings.HasSuffix(out, tc.wantOut) || took < tc.minT || took > tc.maxT {
			t.Errorf("%s (idle_timeout %s): got status %d out %q stderr %q after %s, want status %d, output ending %q, after %s to %s",
				tc.name, idle, code, out, errs, took.Round(time.Millisecond), tc.wantStatus, tc.wantOut, tc.minT, tc.maxT)
		}
	}
	if !strings.Contains(e.log.String(), "idle_timeout") {
		t.Errorf("log %q: want a line about the idle connection closed", e.log.String())
	}
}

// TestForwardingRefused: remote forwarding, agent forwarding and X11 are
// refused by the real client's own reckoning, and local forwarding when
// allow_tcp_forwarding is no.
func TestForwardingRefused(t *testing.T) {
	needTool(t, "ssh")
	e := startServer(t, envOpts{rancherID: -1})

	// ssh -R: the client learns the server said no.
	r := e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"}, "echo in")
	if out, errs, code := r.run(t, "ssh"); code != 255 || !strings.Contains(errs, "remote port forwarding failed") || out != "" {
		t.Errorf("ssh -R with ExitOnForwardFailure: got status %d out %q stderr %q, want 255 and \"remote port forwarding failed\"", code, out, errs)
	}

	// ssh -A with an agent that holds a key: no SSH_AUTH_SOCK on the node.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	keyring := agent.NewKeyring()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	// (IdentityAgent comes before baseArgs' "none", which would leave the
	// client no agent to forward.)
	r = e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-A", "-o", "IdentityAgent=" + sock}, "echo sock=$SSH_AUTH_SOCK")
	out, errsA, code := r.run(t, "ssh")
	if code != 0 || out != "sock=\n" {
		t.Errorf("ssh -A: got status %d out %q stderr %q, want status 0 and no SSH_AUTH_SOCK", code, out, errsA)
	}
	if !strings.Contains(e.log.String(), "auth-agent-req@openssh.com refused") {
		t.Errorf("ssh -A: log %q, want the server to have refused the client's agent forwarding request (ssh: %s)", e.log.String(), errsA)
	}

	// ssh -X: the client reports the refusal and no DISPLAY is set.
	// Trusted, so that the client sends its request even without xauth
	// (with made-up cookie data).
	r = e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-X", "-o", "ForwardX11Trusted=yes", "-o", "LogLevel=INFO"}, "echo display=$DISPLAY")
	r.env = []string{"DISPLAY=127.0.0.1:99", "XAUTHORITY=" + filepath.Join(t.TempDir(), "Xauthority")}
	if out, errs, code := r.run(t, "ssh"); code != 0 || out != "display=\n" || !strings.Contains(errs, "X11 forwarding request failed") {
		t.Errorf("ssh -X: got status %d out %q stderr %q, want status 0, no DISPLAY and \"X11 forwarding request failed\"", code, out, errs)
	}

	// The server's own replies, asked for explicitly.
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, req := range []string{"auth-agent-req@openssh.com", "x11-req"} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte(nil)
		if req == "x11-req" {
			payload = ssh.Marshal(struct {
				Single        bool
				Proto, Cookie string
				Screen        uint32
			}{false, "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0})
		}
		if ok, err := s.SendRequest(req, true, payload); ok || err != nil {
			t.Errorf("session request %s: got ok=%v err=%v, want refused", req, ok, err)
		}
		s.Close()
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Errorf("tcpip-forward (ssh -R): accepted, want refused")
	}
	for _, want := range []string{"remote port forwarding (ssh -R) refused", "auth-agent-req@openssh.com refused", "x11-req refused"} {
		if !strings.Contains(e.log.String(), want) {
			t.Errorf("log %q: want %q", e.log.String(), want)
		}
	}
}

// TestLocalForwardOff: with allow_tcp_forwarding no, ssh -L gets
// "administratively prohibited" and no byte reaches the target.
func TestLocalForwardOff(t *testing.T) {
	needTool(t, "ssh")
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{NoTCPForwarding: true}})
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := target.Accept(); err == nil {
			reached <- struct{}{}
			c.Close()
		}
	}()
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if fc, err := c.Dial("tcp", target.Addr().String()); err == nil {
		fc.Close()
		t.Errorf("direct-tcpip with allow_tcp_forwarding no: accepted, want refused")
	} else if !strings.Contains(err.Error(), "administratively prohibited") {
		t.Errorf("direct-tcpip with allow_tcp_forwarding no: got %v, want administratively prohibited", err)
	}

	// The real client, as a user would run it.
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	lport := free.Addr().(*net.TCPAddr).Port
	free.Close()
	args := e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-o", "LogLevel=INFO", "-N", "-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, target.Addr())}).args
	cmd := exec.Command("ssh", args...)
	var errb testutil.LockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "administratively prohibited") {
		if time.Now().After(deadline) {
			t.Fatalf("ssh -L with allow_tcp_forwarding no: stderr %q, want \"administratively prohibited\"", errb.String())
		}
		if lc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lport)); err == nil {
			lc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, _ := io.ReadAll(lc); len(b) > 0 {
				t.Errorf("ssh -L with allow_tcp_forwarding no: read %q through the tunnel, want nothing", b)
			}
			lc.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-reached:
		t.Errorf("ssh -L with allow_tcp_forwarding no: the target got a connection")
	default:
	}
}

// pongServer answers "pong:" + the first 5 bytes it reads, on 127.0.0.1.
func pongServer(t *testing.T) net.Listener {
	t.Helper()
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := io.ReadAll(io.LimitReader(c, 5))
				fmt.Fprintf(c, "pong:%s", line)
			}()
		}
	}()
	return target
}

// ping connects to addr until "pong:hello" comes back or d has passed.
func ping(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			io.WriteString(c, "hello")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) == "pong:hello" {
				return nil
			}
			err = fmt.Errorf("got %q", got)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRemoteForward: with allow_tcp_forwarding remote or all, ssh -R
// listens on the node's loopback address and carries connections back to
// the client's side; a port below 1024 is for root only.
func TestRemoteForward(t *testing.T) {
	needTool(t, "ssh")
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{RemoteForwarding: true}})
	target := pongServer(t)
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	rport := free.Addr().(*net.TCPAddr).Port
	free.Close()
	r := e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-N", "-o", "ExitOnForwardFailure=yes",
		"-R", fmt.Sprintf("127.0.0.1:%d:%s", rport, target.Addr())})
	cmd := exec.Command("ssh", r.args...)
	var errb testutil.LockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := ping(fmt.Sprintf("127.0.0.1:%d", rport), 30*time.Second); err != nil {
		t.Fatalf("ssh -R %d: no answer through the tunnel: %v (ssh: %s)", rport, err, errb.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The listener goes with the connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", rport))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("port %d still listens after the ssh -R client went away", rport)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Any port (0): the server says which, and cancel closes it.
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpip-forward of port 0: %v, want a port", err)
	}
	go func() {
		for {
			fc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc, err := net.Dial("tcp", target.Addr().String())
				if err != nil {
					fc.Close()
					return
				}
				go io.Copy(tc, fc)
				io.Copy(fc, tc)
				fc.Close()
				tc.Close()
			}()
		}
	}()
	if err := ping(ln.Addr().String(), 10*time.Second); err != nil {
		t.Errorf("tcpip-forward of port 0 (got %s): %v", ln.Addr(), err)
	}
	ln.Close()

	// uid 1000 may not listen below 1024 (the server runs as root).
	if os.Getuid() == 0 {
		e2 := startServer(t, envOpts{rancherID: 1000, cfg: Config{RemoteForwarding: true}})
		c2, err := e2.dial("rancher", ssh.PublicKeys(e2.signer))
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if l, err := c2.Listen("tcp", "127.0.0.1:1023"); err == nil {
			l.Close()
			t.Errorf("tcpip-forward of port 1023 as uid 1000: accepted, want refused (root only)")
		}
		if !strings.Contains(e2.log.String(), "only root may listen below 1024") {
			t.Errorf("log %q: want the line about the privileged port", e2.log.String())
		}
	}
}

// TestAgentForward: with allow_agent_forwarding, ssh -A gives the session
// an SSH_AUTH_SOCK through which the client's agent answers, in a
// directory only the user can enter, removed when the session ends.
func TestAgentForward(t *testing.T) {
	needTool(t, "ssh")
	needTool(t, "ssh-add")
	e := startServer(t, envOpts{rancherID: -1, cfg: Config{AgentForwarding: true}})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	keyring := agent.NewKeyring()
	_, pk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: pk, Comment: "keso-test-agent-key"}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	r := e.keyLoginOpts("rancher", []string{e.keyFile}, []string{"-A", "-o", "IdentityAgent=" + sock},
		`echo "$SSH_AUTH_SOCK"; stat -c '%a %u' "$(dirname "$SSH_AUTH_SOCK")"; ssh-add -l`)
	out, errs, code := r.run(t, "ssh")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasSuffix(lines[0], "/agent.sock") ||
		lines[1] != fmt.Sprintf("700 %d", os.Getuid()) || !strings.Contains(lines[2], "keso-test-agent-key") {
		t.Fatalf("ssh -A with allow_agent_forwarding: got status %d out %q stderr %q; want SSH_AUTH_SOCK, its directory 700 owned by the user, and ssh-add -l listing the client's key", code, out, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Dir(lines[0])); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after the session ended", filepath.Dir(lines[0]))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConfigFrom: keso.ssh as the server takes it, defaults filled in.
func TestConfigFrom(t *testing.T) {
	defaults := Config{Port: 22, MaxAuthTries: 6, LoginGraceTime: 2 * time.Minute, MaxStartups: 10}
	with := func(f func(*Config)) Config { c := defaults; f(&c); return c }
	for _, tc := range []struct {
		name string
		ssh  *cloudconfig.SSH
		want Config
	}{
		{"no ssh block", nil, defaults},
		{"empty", &cloudconfig.SSH{}, defaults},
		{"limits", &cloudconfig.SSH{Port: 2222, MaxAuthTries: 3, LoginGraceTime: "30s", MaxStartups: 4, IdleTimeout: "15m"},
			with(func(c *Config) {
				c.Port, c.MaxAuthTries, c.LoginGraceTime, c.MaxStartups, c.IdleTimeout = 2222, 3, 30*time.Second, 4, 15*time.Minute
			})},
		{"idle 0", &cloudconfig.SSH{IdleTimeout: "0"}, defaults},
		{"forwarding local", &cloudconfig.SSH{AllowTCPForwarding: "local"}, defaults},
		{"forwarding no", &cloudconfig.SSH{AllowTCPForwarding: "no"}, with(func(c *Config) { c.NoTCPForwarding = true })},
		{"forwarding remote", &cloudconfig.SSH{AllowTCPForwarding: "remote"}, with(func(c *Config) { c.NoTCPForwarding, c.RemoteForwarding = true, true })},
		{"forwarding all", &cloudconfig.SSH{AllowTCPForwarding: "all"}, with(func(c *Config) { c.RemoteForwarding = true })},
		{"forwarding yes", &cloudconfig.SSH{AllowTCPForwarding: "yes"}, with(func(c *Config) { c.RemoteForwarding = true })},
		{"agent", &cloudconfig.SSH{AllowAgentForwarding: true, PasswordAuth: true, RootLogin: true},
			with(func(c *Config) { c.AgentForwarding, c.PasswordAuth, c.RootLogin = true, true, true })},
	} {
		var cc cloudconfig.Config
		cc.Keso.SSH = tc.ssh
		if got := ConfigFrom(cc); got != tc.want {
			t.Errorf("%s: ConfigFrom(%+v): got %+v, want %+v", tc.name, tc.ssh, got, tc.want)
		}
	}
}
