// Package console is keso's login on the serial or VGA console: a
// `login:` prompt and a password (not echoed), checked against the node's
// /etc/shadow with SHA-512 crypt (pkg/crypt), then the user's shell
// (/bin/sh by default) as that user, in a new session with the terminal as
// its controlling TTY. When the shell exits the prompt comes back.
//
// What is safe when no password is set: k3OS logged `rancher` in on the
// console automatically; keso does not. An account whose shadow field is
// empty, "*", "!…" or not a SHA-512 crypt hash cannot log in on the
// console, ever — an empty field never means "no password needed". When no
// account can log in, each prompt is preceded by a line saying how to get
// in: set `keso.password` (plain text or a "$6$" hash) in the config, or
// use SSH with a key from ssh_authorized_keys. The one way in without a
// password is rescue mode: with `keso.debug` on the kernel command line the
// system stage sets Console.Rescue and the console gives a root shell
// without asking (anyone who can edit the kernel command line already owns
// the machine). A wrong password costs a delay (3 s by default).
//
// Use (in keso-init's system stage, one goroutine per console):
//
//	for _, dev := range console.Devices(fsys) {      // from /sys/class/tty/console/active
//		go func() {
//			c := &console.Console{FS: fsys, Runner: console.HostRunner{}, Hostname: name, Issue: summary, Rescue: debug}
//			for ctx.Err() == nil {
//				tty, err := host.Linux{}.OpenTerminal(dev)
//				if err != nil { log; sleep; continue }
//				c.Serve(ctx, tty) // returns on EOF/hangup
//				tty.Close()
//			}
//		}()
//	}
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/users"
)

// FS reads the node's account files; host.FS implements it.
type FS interface {
	ReadFile(p string) ([]byte, error)
}

// Terminal is the console device: read and write, and echo on or off.
type Terminal interface {
	io.ReadWriter
	SetEcho(on bool) error
}

// Session is a logged-in user, as the shell is started for.
type Session struct {
	User   users.User
	Groups []uint32 // supplementary groups from /etc/group
	Shell  string
	Env    []string
}

// Runner runs a session's shell on the terminal and waits for it to end.
type Runner interface {
	Run(ctx context.Context, s Session, t Terminal) error
}

// Console is one login loop.
type Console struct {
	FS     FS
	Runner Runner
	// Hostname is shown in the prompt ("node1 login: ").
	Hostname string
	// Issue is printed before each prompt (version, addresses, SSH hint).
	Issue string
	// Shell overrides every user's shell when set.
	Shell string
	// Rescue (keso.debug) gives a root shell without a login.
	Rescue bool
	// FailDelay is the wait after a wrong password (default 3 s).
	FailDelay time.Duration
}

// Errors of Authenticate.
var (
	ErrUnknownUser = errors.New("unknown user")
	ErrNoPassword  = errors.New("no console password is set for this account")
	ErrBadPassword = errors.New("wrong password")
)

// NoPasswordHint is printed when no account can log in on the console.
const NoPasswordHint = "keso: console login is disabled: no password is set. Set keso.password " +
	"(plain text or a $6$ crypt hash) in the config and reboot, or log in over SSH " +
	"with a key from ssh_authorized_keys. keso.debug on the kernel command line gives a rescue shell."

// Authenticate checks name and password against /etc/passwd and
// /etc/shadow under fsys.
func Authenticate(fsys FS, name, password string) (Session, error) {
	db, shadow, err := readDB(fsys)
	if err != nil {
		return Session{}, err
	}
	u, ok := db.Users[name]
	if !ok {
		return Session{}, ErrUnknownUser
	}
	h, _ := users.ShadowHash(shadow, name)
	if !strings.HasPrefix(h, "$6$") {
		return Session{}, ErrNoPassword
	}
	if err := crypt.Verify(h, password); err != nil {
		if errors.Is(err, crypt.ErrMismatch) {
			return Session{}, ErrBadPassword
		}
		return Session{}, err
	}
	group, _ := fsys.ReadFile(users.GroupFile)
	return Session{User: u, Groups: memberOf(group, name, u.GID), Shell: u.Shell}, nil
}

// CanLogIn reports whether any account has a console password.
func CanLogIn(fsys FS) bool {
	shadow, err := fsys.ReadFile(users.ShadowFile)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(shadow), "\n") {
		if f := strings.Split(l, ":"); len(f) > 1 && strings.HasPrefix(f[1], "$6$") {
			return true
		}
	}
	return false
}

func readDB(fsys FS) (users.DB, []byte, error) {
	passwd, err := fsys.ReadFile(users.PasswdFile)
	if err != nil {
		return users.DB{}, nil, err
	}
	group, err := fsys.ReadFile(users.GroupFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return users.DB{}, nil, err
	}
	shadow, err := fsys.ReadFile(users.ShadowFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return users.DB{}, nil, err
	}
	return users.ParseDB(passwd, group), shadow, nil
}

// memberOf lists the groups of /etc/group that name is a member of, plus
// its primary group.
func memberOf(group []byte, name string, primary int) []uint32 {
	out := []uint32{uint32(primary)}
	for _, l := range strings.Split(string(group), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || gid == primary {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == name {
				out = append(out, uint32(gid))
			}
		}
	}
	return out
}

// environment of a login shell.
func (c *Console) env(s Session) []string {
	return []string{
		"HOME=" + s.User.Home, "USER=" + s.User.Name, "LOGNAME=" + s.User.Name, "SHELL=" + s.Shell,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=linux",
	}
}

func (c *Console) shell(s string) string {
	switch {
	case c.Shell != "":
		return c.Shell
	case s != "":
		return s
	}
	return "/bin/sh"
}

// Serve runs the login loop on t until ctx ends or the terminal reports
// EOF (a hangup), which it returns.
func (c *Console) Serve(ctx context.Context, t Terminal) error {
	r := bufio.NewReader(t)
	for ctx.Err() == nil {
		if c.Rescue {
			fmt.Fprint(t, "\r\nkeso: keso.debug is set: rescue shell as root, no login. Exit the shell to get it again.\r\n")
			s := Session{User: users.User{Name: "root", Home: "/root", Shell: "/bin/sh"}, Groups: []uint32{0}, Shell: c.shell("/bin/sh")}
			s.Env = c.env(s)
			if err := c.Runner.Run(ctx, s, t); err != nil {
				fmt.Fprintf(t, "\r\nkeso: rescue shell: %v\r\n", err)
				if err := c.sleep(ctx, c.delay()); err != nil {
					return err
				}
			}
			continue
		}
		if c.Issue != "" {
			fmt.Fprintf(t, "\r\n%s\r\n", strings.ReplaceAll(strings.TrimRight(c.Issue, "\n"), "\n", "\r\n"))
		}
		if !CanLogIn(c.FS) {
			fmt.Fprintf(t, "\r\n%s\r\n", NoPasswordHint)
		}
		host := c.Hostname
		if host == "" {
			host = "keso"
		}
		fmt.Fprintf(t, "\r\n%s login: ", host)
		name, err := readLine(r)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		if err := t.SetEcho(false); err != nil {
			return fmt.Errorf("console: turn echo off: %w", err)
		}
		fmt.Fprint(t, "Password: ")
		pw, err := readLine(r)
		echoErr := t.SetEcho(true)
		fmt.Fprint(t, "\r\n")
		if err != nil {
			return err
		}
		if echoErr != nil {
			return fmt.Errorf("console: turn echo on: %w", echoErr)
		}
		s, err := Authenticate(c.FS, name, pw)
		if err != nil {
			// The same answer for every reason: no hint to a guesser
			// about which user names exist.
			if err := c.sleep(ctx, c.delay()); err != nil {
				return err
			}
			fmt.Fprint(t, "Login incorrect\r\n")
			continue
		}
		s.Shell = c.shell(s.Shell)
		s.Env = c.env(s)
		if err := c.Runner.Run(ctx, s, t); err != nil {
			fmt.Fprintf(t, "\r\nkeso: shell: %v\r\n", err)
		}
		fmt.Fprint(t, "\r\nlogout\r\n")
	}
	return ctx.Err()
}

func (c *Console) delay() time.Duration {
	if c.FailDelay > 0 {
		return c.FailDelay
	}
	return 3 * time.Second
}

func (c *Console) sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// readLine reads up to a newline (or carriage return), without it.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := r.ReadByte()
		if err != nil {
			if b.Len() > 0 && errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			return "", err
		}
		switch c {
		case '\n', '\r':
			return strings.TrimSpace(b.String()), nil
		}
		if b.Len() < 1024 {
			b.WriteByte(c)
		}
	}
}
