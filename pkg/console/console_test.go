package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/host"
)

func nodeFS(t *testing.T, rancherHash string) host.FS {
	t.Helper()
	root := t.TempDir()
	// The shell runs as uid 1000 in root/home/rancher: let it through.
	os.Chmod(root, 0o755)
	os.Chmod(filepath.Dir(root), 0o755)
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nrancher:x:1000:1000:rancher:" + filepath.Join(root, "home/rancher") + ":/bin/sh\n",
		"etc/group":  "root:x:0:\nrancher:x:1000:\nadm:x:4:rancher,alice\n",
		"etc/shadow": "root:*::0:99999:7:::\nrancher:" + rancherHash + "::0:99999:7:::\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "home/rancher"), 0o755)
	os.Chown(filepath.Join(root, "home/rancher"), 1000, 1000)
	return host.FS{Root: root}
}

func hash(t *testing.T, pw string) string {
	h, err := crypt.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAuthenticate(t *testing.T) {
	fsys := nodeFS(t, hash(t, "pw"))
	s, err := Authenticate(fsys, "rancher", "pw")
	if err != nil || s.User.UID != 1000 || len(s.Groups) != 2 || s.Groups[0] != 1000 || s.Groups[1] != 4 {
		t.Errorf("Authenticate(rancher, pw) = %+v, %v; want uid 1000, groups [1000 4]", s, err)
	}
	for _, tc := range []struct {
		user, pw string
		want     error
	}{
		{"rancher", "PW", ErrBadPassword}, {"rancher", "", ErrBadPassword},
		{"root", "", ErrNoPassword}, {"root", "*", ErrNoPassword}, {"mallory", "pw", ErrUnknownUser},
	} {
		if _, err := Authenticate(fsys, tc.user, tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.pw, err, tc.want)
		}
	}
	// Locked, empty and foreign hashes never log in, not even with an
	// empty password.
	for _, h := range []string{"*", "!", "", "!" + hash(t, "pw"), "$1$abc$def"} {
		fsys := nodeFS(t, h)
		if _, err := Authenticate(fsys, "rancher", ""); !errors.Is(err, ErrNoPassword) {
			t.Errorf("shadow %q: Authenticate with empty password = %v, want ErrNoPassword", h, err)
		}
		if CanLogIn(fsys) {
			t.Errorf("shadow %q: CanLogIn = true", h)
		}
	}
}

// fakeTerm is a scripted terminal.
type fakeTerm struct {
	in    io.Reader
	out   bytes.Buffer
	echo  []bool
	mu    sync.Mutex
	reads int
}

func (f *fakeTerm) Read(b []byte) (int, error) { return f.in.Read(b) }
func (f *fakeTerm) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(b)
}
func (f *fakeTerm) SetEcho(on bool) error { f.echo = append(f.echo, on); return nil }

type fakeRunner struct{ sessions []Session }

func (r *fakeRunner) Run(_ context.Context, s Session, _ Terminal) error {
	r.sessions = append(r.sessions, s)
	return nil
}

func TestServeScripted(t *testing.T) {
	fsys := nodeFS(t, hash(t, "pw"))
	term := &fakeTerm{in: strings.NewReader("rancher\nwrong\n\nrancher\npw\n")}
	run := &fakeRunner{}
	c := &Console{FS: fsys, Runner: run, Hostname: "node1", Issue: "keso 1.0 on ttyS0", FailDelay: time.Millisecond}
	err := c.Serve(context.Background(), term)
	if !errors.Is(err, io.EOF) {
		t.Errorf("Serve = %v, want EOF at the end of input", err)
	}
	out := term.out.String()
	for _, want := range []string{"keso 1.0 on ttyS0", "node1 login: ", "Password: ", "Login incorrect", "logout"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, NoPasswordHint) {
		t.Errorf("hint shown although rancher has a password")
	}
	if len(run.sessions) != 1 || run.sessions[0].User.Name != "rancher" || run.sessions[0].Shell != "/bin/sh" {
		t.Errorf("sessions %+v, want one rancher /bin/sh", run.sessions)
	}
	if got := run.sessions[0].Env; !contains(got, "USER=rancher") || !contains(got, "HOME="+fsys.Path("/home/rancher")) {
		t.Errorf("env %v", got)
	}
	if want := []bool{false, true, false, true}; !equalBools(term.echo, want) {
		t.Errorf("echo toggles %v, want %v", term.echo, want)
	}
}

func TestServeNoPasswordHintAndRescue(t *testing.T) {
	fsys := nodeFS(t, "*")
	term := &fakeTerm{in: strings.NewReader("rancher\n\n")}
	run := &fakeRunner{}
	c := &Console{FS: fsys, Runner: run, FailDelay: time.Millisecond}
	c.Serve(context.Background(), term)
	if !strings.Contains(term.out.String(), NoPasswordHint) || len(run.sessions) != 0 {
		t.Errorf("no password: hint shown %v, sessions %d (want hint, 0)", strings.Contains(term.out.String(), NoPasswordHint), len(run.sessions))
	}

	ctx, cancel := context.WithCancel(context.Background())
	rescue := &Console{FS: fsys, Rescue: true, Runner: runnerFunc(func(s Session) { run.sessions = append(run.sessions, s); cancel() })}
	term = &fakeTerm{in: strings.NewReader("")}
	rescue.Serve(ctx, term)
	if len(run.sessions) != 1 || run.sessions[0].User.Name != "root" || !strings.Contains(term.out.String(), "rescue shell") {
		t.Errorf("rescue: sessions %+v output %q", run.sessions, term.out.String())
	}
}

type runnerFunc func(Session)

func (f runnerFunc) Run(_ context.Context, s Session, _ Terminal) error { f(s); return nil }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ptyLog collects what the pty master reads.
type ptyLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *ptyLog) String() string { p.mu.Lock(); defer p.mu.Unlock(); return p.buf.String() }

func (p *ptyLog) expect(t *testing.T, from int, want string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s := p.String()
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %q; terminal shows:\n%s", want, p.String()[from:])
	return 0
}

// TestLoginOnRealPTY logs in through a real pseudo-terminal, runs a real
// shell as uid 1000 and checks its controlling terminal.
func TestLoginOnRealPTY(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to start the shell as uid 1000 (CI runs as root)")
	}
	master, slave, err := host.Linux{}.OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	var log ptyLog
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			log.mu.Lock()
			log.buf.Write(b[:n])
			log.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	fsys := nodeFS(t, hash(t, "pw-secret"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Console{FS: fsys, Runner: HostRunner{}, Hostname: "node1", FailDelay: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, host.NewTerminal(slave)) }()

	at := log.expect(t, 0, "node1 login: ")
	master.Write([]byte("rancher\n"))
	at = log.expect(t, at, "Password: ")
	master.Write([]byte("not-it\n"))
	at = log.expect(t, at, "Login incorrect")
	at = log.expect(t, at, "node1 login: ")
	master.Write([]byte("rancher\n"))
	at = log.expect(t, at, "Password: ")
	pwAt := at
	master.Write([]byte("pw-secret\n"))
	at = log.expect(t, at, "$ ")
	master.Write([]byte("echo uid=$(id -u) groups=$(id -G); : </dev/tty && echo ctty-ok; echo sum=$((40+2))\n"))
	at = log.expect(t, at, "sum=42")
	out := log.String()
	for _, want := range []string{"uid=1000 groups=1000 4", "ctty-ok"} {
		if !strings.Contains(out[pwAt:], want) {
			t.Errorf("shell output lacks %q:\n%s", want, out[pwAt:])
		}
	}
	if strings.Contains(out, "pw-secret") || strings.Contains(out, "not-it") {
		t.Errorf("a password was echoed:\n%s", out)
	}
	master.Write([]byte("exit\n"))
	at = log.expect(t, at, "logout")
	log.expect(t, at, "node1 login: ")
	cancel()
	slave.Close()
}
