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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
)

// Config is the server's part of the cloud-config (`keso.ssh`). The zero
// value of each field is its default.
type Config struct {
	Port         int  // default 22
	PasswordAuth bool // allow password logins (needs a PasswordChecker)
	RootLogin    bool // allow root with the authorized keys
	// MaxAuthTries is how many failed authentication attempts a connection
	// gets before it is closed (default 6, OpenSSH's MaxAuthTries). Keys a
	// client only offers have a budget of the same size besides, so that an
	// agent with many keys still gets to its right one.
	MaxAuthTries int
	// LoginGraceTime closes a connection that has not logged in by then
	// (default 2m, OpenSSH's LoginGraceTime).
	LoginGraceTime time.Duration
	// MaxStartups is how many connections may be unauthenticated at once;
	// more are closed at once (default 10, OpenSSH's MaxStartups without
	// its random early drop).
	MaxStartups int
	// IdleTimeout closes a logged-in connection after that long without a
	// byte in either direction (0: never).
	IdleTimeout time.Duration
	// NoTCPForwarding refuses local forwarding (ssh -L), which is allowed
	// by default.
	NoTCPForwarding bool
	// RemoteForwarding allows ssh -R: listening on the node's loopback
	// address (below port 1024 for root only). Off by default.
	RemoteForwarding bool
	// AgentForwarding allows ssh -A. Off by default. X11 is always
	// refused.
	AgentForwarding bool
}

// The defaults of Config's zero fields.
const (
	DefaultMaxAuthTries   = 6
	DefaultLoginGraceTime = 2 * time.Minute
	DefaultMaxStartups    = 10
)

func (c Config) maxAuthTries() int {
	if c.MaxAuthTries <= 0 {
		return DefaultMaxAuthTries
	}
	return c.MaxAuthTries
}

func (c Config) loginGraceTime() time.Duration {
	if c.LoginGraceTime <= 0 {
		return DefaultLoginGraceTime
	}
	return c.LoginGraceTime
}

func (c Config) maxStartups() int {
	if c.MaxStartups <= 0 {
		return DefaultMaxStartups
	}
	return c.MaxStartups
}

// ConfigFrom takes the SSH settings out of a cloud-config (validated:
// values Validate rejected were cleared and take their defaults).
func ConfigFrom(c cloudconfig.Config) Config {
	var sc Config
	if s := c.Keso.SSH; s != nil {
		sc = Config{Port: s.Port, PasswordAuth: s.PasswordAuth, RootLogin: s.RootLogin,
			MaxAuthTries: s.MaxAuthTries, MaxStartups: s.MaxStartups, AgentForwarding: s.AllowAgentForwarding}
		switch s.AllowTCPForwarding {
		case "no":
			sc.NoTCPForwarding = true
		case "remote":
			sc.NoTCPForwarding, sc.RemoteForwarding = true, true
		case "all", "yes":
			sc.RemoteForwarding = true
		}
		sc.LoginGraceTime, _ = time.ParseDuration(s.LoginGraceTime)
		sc.IdleTimeout, _ = time.ParseDuration(s.IdleTimeout)
	}
	if sc.Port == 0 {
		sc.Port = 22
	}
	sc.MaxAuthTries, sc.LoginGraceTime, sc.MaxStartups = sc.maxAuthTries(), sc.loginGraceTime(), sc.maxStartups()
	return sc
}

// The algorithms the server offers, strongest first (read-only): nothing
// ssh-audit fails or warns about (2.5.0 only does not know
// mlkem768x25519-sha256 yet; see TestSSHAudit). Every OpenSSH since 6.5 (2014) has
// curve25519, chacha20-poly1305 and the GCM ciphers; ML-KEM hybrid key
// exchange is used by OpenSSH 9.9 and later. With AEAD ciphers only, the
// MACs are used by no client today; they are the encrypt-then-MAC ones in
// case a future cipher needs one.
var (
	KeyExchanges = []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org"}
	Ciphers      = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM, ssh.CipherAES128GCM}
	MACs         = []string{ssh.HMACSHA512ETM, ssh.HMACSHA256ETM}
)

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

	mu         sync.Mutex
	dropped    int       // connections refused over MaxStartups since droppedLog
	droppedLog time.Time // when the last such line was logged
	conns      map[net.Conn]struct{}
	handshake  chan struct{} // bounds handshakes in progress
	config     *ssh.ServerConfig
	keys       []ssh.Signer
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
		Config: ssh.Config{
			KeyExchanges: KeyExchanges,
			Ciphers:      Ciphers,
			MACs:         MACs,
		},
		PublicKeyCallback: s.checkKey,
		ServerVersion:     "SSH-2.0-keso",
		MaxAuthTries:      s.Config.maxAuthTries(),
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
	s.handshake = make(chan struct{}, s.Config.maxStartups())
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
			s.refused(c)
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

// allowed says whether name may log in at all: root only with root_login;
// any other account in /etc/passwd (rancher, or a user the config adds)
// with its own authorized_keys or password, as OpenSSH allows.
func (s *Server) allowed(name string) bool {
	return name != "root" || s.Config.RootLogin
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
	err := fmt.Errorf("user %q may not log in", name)
	if s.allowed(name) {
		err = s.Passwords.CheckPassword(name, string(pw))
	}
	if err != nil {
		// Slow down guessing, the same for a user who may not log in (the
		// delay must not tell which names exist).
		time.Sleep(time.Second)
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{"user": name, "auth": "password"}}, nil
}

// refused closes a connection over MaxStartups, with a console line at
// most every 10 seconds (a flood must not flood the console too).
func (s *Server) refused(c net.Conn) {
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped++
	if time.Since(s.droppedLog) >= 10*time.Second {
		s.logf("%s: refused: %d connections are already logging in (max_startups); %d refused since the last such line", c.RemoteAddr(), cap(s.handshake), s.dropped)
		s.dropped, s.droppedLog = 0, time.Now()
	}
}

func (s *Server) handleConn(c net.Conn) {
	// The grace time bounds the whole log-in: banner, key exchange and
	// authentication.
	c.SetDeadline(time.Now().Add(s.Config.loginGraceTime()))
	ac := &activityConn{Conn: c}
	sc, chans, reqs, err := ssh.NewServerConn(ac, s.config)
	<-s.handshake
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			s.logf("%s: not logged in after %s (login_grace_time): closed", c.RemoteAddr(), s.Config.loginGraceTime())
		case !errors.Is(err, io.EOF):
			s.logf("%s: handshake: %v", c.RemoteAddr(), err)
		}
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	if d := s.Config.IdleTimeout; d > 0 {
		go s.closeIdle(sc, ac, d)
	}
	name := sc.Permissions.Extensions["user"]
	s.logf("%s: %s logged in (%s)", c.RemoteAddr(), name, sc.Permissions.Extensions["auth"])
	u, err := lookupUser(s.FS, name)
	if err != nil {
		s.logf("%s: %v", c.RemoteAddr(), err)
		return
	}
	rf := &remoteForwards{srv: s, conn: sc, user: u}
	defer rf.closeAll()
	go s.globalRequests(reqs, c.RemoteAddr(), rf)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			ss := &session{srv: s, user: u, ch: ch, conn: sc}
			go ss.serve(creqs)
		case "direct-tcpip":
			if s.Config.NoTCPForwarding {
				nc.Reject(ssh.Prohibited, "port forwarding is turned off on this node (keso.ssh.allow_tcp_forwarding: no)")
				continue
			}
			go s.forward(nc, name)
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
}

// globalRequests serves tcpip-forward and cancel-tcpip-forward (ssh -R)
// when RemoteForwarding is on, else refuses them with a console line; it
// refuses every other global request (keep-alives expect just that).
func (s *Server) globalRequests(reqs <-chan *ssh.Request, addr net.Addr, rf *remoteForwards) {
	for req := range reqs {
		ok, payload := false, []byte(nil)
		switch {
		case req.Type == "tcpip-forward" && s.Config.RemoteForwarding:
			ok, payload = rf.add(req.Payload)
		case req.Type == "cancel-tcpip-forward" && s.Config.RemoteForwarding:
			ok = rf.cancel(req.Payload)
		case req.Type == "tcpip-forward":
			s.logf("%s: %s: remote port forwarding (ssh -R) refused: it is off (keso.ssh.allow_tcp_forwarding: remote or all turns it on)", addr, rf.user.Name)
		}
		if req.WantReply {
			req.Reply(ok, payload)
		}
	}
}

// activityConn records when a byte last went either way.
type activityConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *activityConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// closeIdle closes sc once nothing has gone either way on ac for d
// (IdleTimeout), and returns when sc ends.
func (s *Server) closeIdle(sc *ssh.ServerConn, ac *activityConn, d time.Duration) {
	ended := make(chan struct{})
	go func() { sc.Wait(); close(ended) }()
	ac.last.Store(time.Now().UnixNano())
	tick := min(max(d/10, 50*time.Millisecond), 10*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ended:
			return
		case <-t.C:
			if idle := time.Since(time.Unix(0, ac.last.Load())); idle >= d {
				s.logf("%s: %s idle for %s (idle_timeout %s): closed", ac.RemoteAddr(), sc.User(), idle.Round(time.Second), d)
				sc.Close()
				return
			}
		}
	}
}
