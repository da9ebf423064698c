package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
)

// Config is the server's part of the cloud-config (`keso.ssh`).
type Config struct {
	Port         int  // default 22
	PasswordAuth bool // allow password logins (needs a PasswordChecker)
	RootLogin    bool // allow root with the authorized keys
}

// ConfigFrom takes the SSH settings out of a cloud-config.
func ConfigFrom(c cloudconfig.Config) Config {
	var sc Config
	if s := c.Keso.SSH; s != nil {
		sc = Config{Port: s.Port, PasswordAuth: s.PasswordAuth, RootLogin: s.RootLogin}
	}
	if sc.Port == 0 {
		sc.Port = 22
	}
	return sc
}

// Host is what the server needs from the machine; *host.Linux implements it.
type Host interface {
	EnsureDevpts() (mounted bool, err error)
	OpenPTY() (master, slave *os.File, err error)
	SetWinsize(f *os.File, rows, cols uint16) error
	UserCommand(uid, gid uint32, groups []uint32, argv, env []string, dir string, tty *os.File) *exec.Cmd
}

// PasswordChecker verifies a user's password (against /etc/shadow on a
// node). It returns nil when the password is right.
type PasswordChecker interface {
	CheckPassword(user, password string) error
}

// DefaultPath is PATH for login sessions.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Server is keso's SSH server. Set the fields, then call ListenAndServe or
// Serve. The zero values of the optional fields are the node's defaults.
type Server struct {
	Config Config
	// FS is the node's root: /etc/passwd, /etc/group, the users'
	// authorized_keys and the host keys are read through it. Processes run
	// in the real root of the calling process.
	FS   host.FS
	Host Host
	// KeyDir holds the host keys (default DefaultKeyDir).
	KeyDir string
	// Passwords checks passwords when Config.PasswordAuth is set; nil means
	// password auth is unsupported.
	Passwords PasswordChecker
	// SFTPCommand runs an SFTP server on stdin/stdout (see SFTPMain); it is
	// started as the logged-in user. Without it the sftp subsystem is served
	// in-process, which is allowed only when the user is the server's own
	// uid (never hand out the server's privileges to another user).
	SFTPCommand []string
	// Log receives one line per notable event (console); nil discards.
	Log io.Writer

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	handshake chan struct{} // bounds handshakes in progress
	config    *ssh.ServerConfig
	keys      []ssh.Signer
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		fmt.Fprintf(s.Log, "keso: sshd: "+format+"\n", args...)
	}
}

// Addr is the listen address for Config.Port.
func (s *Server) Addr() string {
	p := s.Config.Port
	if p == 0 {
		p = 22
	}
	return ":" + strconv.Itoa(p)
}

// ListenAndServe listens on Config.Port on every address and serves until
// ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		return fmt.Errorf("sshd: listen on %s: %w", s.Addr(), err)
	}
	return s.Serve(ctx, ln)
}

// Setup loads or generates the host keys and builds the SSH configuration.
// Serve calls it when it has not been called; call it first to learn the
// host keys (HostKeys) before serving.
func (s *Server) Setup() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.config != nil {
		return nil
	}
	dir := s.KeyDir
	if dir == "" {
		dir = DefaultKeyDir
	}
	keys, err := HostKeys(s.FS, dir, func(action, file, detail string) {
		s.logf("%s host key %s (%s)", action, file, detail)
	})
	if err != nil {
		return fmt.Errorf("sshd: %w", err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: s.checkKey,
		ServerVersion:     "SSH-2.0-keso",
	}
	if s.Config.PasswordAuth {
		if s.Passwords == nil {
			s.logf("password_auth is set but this build has no password checker; password logins are refused, use a key")
		} else {
			cfg.PasswordCallback = s.checkPassword
		}
	}
	for _, k := range keys {
		cfg.AddHostKey(k)
	}
	if mounted, err := s.Host.EnsureDevpts(); err != nil {
		s.logf("no pseudo-terminals (%v): commands work, interactive shells do not", err)
	} else if mounted {
		s.logf("mounted devpts on /dev/pts for pseudo-terminals")
	}
	s.config, s.keys = cfg, keys
	s.handshake = make(chan struct{}, maxHandshakes)
	return nil
}

// HostKeys returns the public host keys (after Setup).
func (s *Server) HostKeys() []ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ssh.PublicKey
	for _, k := range s.keys {
		out = append(out, k.PublicKey())
	}
	return out
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every open connection. It returns nil after ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Setup(); err != nil {
		ln.Close()
		return err
	}
	for _, k := range s.HostKeys() {
		s.logf("listening on %s, host key %s %s", ln.Addr(), k.Type(), ssh.FingerprintSHA256(k))
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}()
	var tempDelay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay < time.Second {
					tempDelay *= 2
				}
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("sshd: accept on %s: %w", ln.Addr(), err)
		}
		tempDelay = 0
		select {
		case s.handshake <- struct{}{}:
		default:
			// Too many unauthenticated connections (a scan or a flood):
			// drop this one rather than run out of memory.
			c.Close()
			continue
		}
		s.track(c, true)
		go func() {
			defer s.track(c, false)
			s.handleConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
		c.Close()
	}
}

// allowed says whether name may log in at all.
func (s *Server) allowed(name string) bool {
	return name == "rancher" || (name == "root" && s.Config.RootLogin)
}

func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	name := meta.User()
	if !s.allowed(name) {
		return nil, fmt.Errorf("user %q may not log in", name)
	}
	u, err := lookupUser(s.FS, name)
	if err != nil {
		return nil, err
	}
	rancherHome := defaultUsers["rancher"].Home
	if r, err := lookupUser(s.FS, "rancher"); err == nil {
		rancherHome = r.Home
	}
	want := key.Marshal()
	for _, f := range keyFiles(u, rancherHome) {
		b, err := s.FS.ReadFile(f)
		if err != nil {
			continue
		}
		keys, withOpts := authorizedKeys(b)
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), want) {
				return &ssh.Permissions{Extensions: map[string]string{"user": name, "auth": "publickey " + ssh.FingerprintSHA256(key)}}, nil
			}
		}
		for _, fp := range withOpts {
			if fp == ssh.FingerprintSHA256(key) {
				s.logf("refused key %s for %s: %s gives it options, which keso's server does not interpret", fp, name, f)
			}
		}
	}
	return nil, fmt.Errorf("key %s not authorized for %s", ssh.FingerprintSHA256(key), name)
}

func (s *Server) checkPassword(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	name := meta.User()
	if !s.allowed(name) {
		return nil, fmt.Errorf("user %q may not log in", name)
	}
	if err := s.Passwords.CheckPassword(name, string(pw)); err != nil {
		time.Sleep(time.Second) // slow down guessing
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{"user": name, "auth": "password"}}, nil
}

// maxHandshakes bounds connections that have not finished authenticating
// (OpenSSH's MaxStartups plays the same role).
const maxHandshakes = 32

func (s *Server) handleConn(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	<-s.handshake
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.logf("%s: handshake: %v", c.RemoteAddr(), err)
		}
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	name := sc.Permissions.Extensions["user"]
	s.logf("%s: %s logged in (%s)", c.RemoteAddr(), name, sc.Permissions.Extensions["auth"])
	u, err := lookupUser(s.FS, name)
	if err != nil {
		s.logf("%s: %v", c.RemoteAddr(), err)
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			ss := &session{srv: s, user: u, ch: ch}
			go ss.serve(creqs)
		case "direct-tcpip":
			go s.forward(nc, name)
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
}
