package sshd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// session is one "session" channel: at most one shell, command or
// subsystem, with an optional pty.
type session struct {
	srv  *Server
	user User
	ch   ssh.Channel
	conn ssh.Conn // for the agent's channels

	mu            sync.Mutex
	env           []string // accepted client variables
	term          string
	master, slave *os.File
	cmd           *exec.Cmd
	started       bool
	exited        bool
	agent         *agentListener // ssh -A, when allowed
}

// waitDelay bounds how long a finished command's output is still copied
// when a background child keeps the pipes open.
const waitDelay = 3 * time.Second

func (ss *session) serve(reqs <-chan *ssh.Request) {
	for req := range reqs {
		var (
			ok  bool
			run func()
		)
		switch req.Type {
		case "pty-req":
			ok = ss.ptyReq(req.Payload)
		case "window-change":
			ok = ss.windowChange(req.Payload)
		case "env":
			ok = ss.setEnv(req.Payload)
		case "shell":
			ok, run = ss.start("", "shell")
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				ok, run = ss.start(p.Command, "exec")
			}
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) == nil && p.Name == "sftp" {
				ok, run = ss.sftp()
			}
		case "auth-agent-req@openssh.com":
			ok = ss.agentReq()
		case "x11-req":
			// Refused (a node has no X), said on the console so that an
			// admin sees why -X did nothing.
			ss.srv.logf("%s: x11-req refused: keso's server does not forward X11", ss.user.Name)
		case "signal":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				ok = ss.signal(p.Name)
			}
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
		// The reply goes out before anything the command sends (its exit
		// status above all).
		if run != nil {
			go run()
		}
	}
	ss.hangup()
}

func (ss *session) ptyReq(payload []byte) bool {
	var p struct {
		Term          string
		Cols, Rows    uint32
		Width, Height uint32
		Modes         string
	}
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.master != nil || ss.started {
		return false
	}
	m, s, err := ss.srv.Host.OpenPTY()
	if err != nil {
		ss.srv.logf("%s: %v", ss.user.Name, err)
		return false
	}
	ss.master, ss.slave, ss.term = m, s, p.Term
	ss.srv.Host.SetWinsize(m, clamp(p.Rows), clamp(p.Cols))
	return true
}

func clamp(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}

func (ss *session) windowChange(payload []byte) bool {
	var p struct{ Cols, Rows, Width, Height uint32 }
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.master == nil {
		return false
	}
	return ss.srv.Host.SetWinsize(ss.master, clamp(p.Rows), clamp(p.Cols)) == nil
}

// setEnv accepts the variables OpenSSH's default AcceptEnv does (locale)
// and TZ; anything else could change how the shell or the loader behaves.
func (ss *session) setEnv(payload []byte) bool {
	var p struct{ Name, Value string }
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return false
	}
	if p.Name != "LANG" && p.Name != "TZ" && !strings.HasPrefix(p.Name, "LC_") {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.env = append(ss.env, p.Name+"="+p.Value)
	return true
}

// agentReq serves auth-agent-req@openssh.com (ssh -A): with
// AgentForwarding, a socket only the user can reach, named by
// SSH_AUTH_SOCK in the commands started after it; else refused.
func (ss *session) agentReq() bool {
	if !ss.srv.Config.AgentForwarding {
		ss.srv.logf("%s: auth-agent-req@openssh.com refused: agent forwarding is off (keso.ssh.allow_agent_forwarding turns it on)", ss.user.Name)
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.agent != nil || ss.started || ss.conn == nil {
		return false
	}
	a, err := listenAgent(ss.conn, ss.user)
	if err != nil {
		ss.srv.logf("%s: %v", ss.user.Name, err)
		return false
	}
	ss.agent = a
	ss.env = append(ss.env, "SSH_AUTH_SOCK="+a.path())
	ss.srv.logf("%s: agent forwarded at %s", ss.user.Name, a.path())
	return true
}

// environ is the environment of the user's processes.
func (ss *session) environ() []string {
	u := ss.user
	env := []string{
		"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name,
		"SHELL=" + u.Shell, "PATH=" + DefaultPath,
	}
	if ss.term != "" {
		env = append(env, "TERM="+ss.term)
	}
	// SSH_CONNECTION and SSH_CLIENT as OpenSSH sets them: scripts (and
	// `keso config apply --try`) learn the address the node is managed on.
	if ss.conn != nil {
		if r, l, ok := hostPorts(ss.conn.RemoteAddr(), ss.conn.LocalAddr()); ok {
			env = append(env, "SSH_CONNECTION="+strings.Join(append(r, l...), " "),
				"SSH_CLIENT="+strings.Join(append(r, l[1]), " "))
		}
	}
	return append(env, ss.env...)
}

// hostPorts splits two TCP addresses into host and port strings.
func hostPorts(remote, local net.Addr) (r, l []string, ok bool) {
	rh, rp, err1 := net.SplitHostPort(remote.String())
	lh, lp, err2 := net.SplitHostPort(local.String())
	if err1 != nil || err2 != nil {
		return nil, nil, false
	}
	return []string{rh, rp}, []string{lh, lp}, true
}

// start runs a login shell (command "") or `SHELL -c command`.
func (ss *session) start(command, kind string) (bool, func()) {
	u := ss.user
	argv := []string{u.Shell, "-c", command}
	if kind == "shell" {
		argv = []string{u.Shell}
	}
	// argv[0] stays the shell's full path: u-root's multi-call binary finds
	// the command from it (following the /bin/sh symlink), so the login
	// shell convention "-sh" would not run at all.
	ok, run := ss.run(argv)
	if ok {
		ss.srv.logf("%s: %s %q", u.Name, kind, command)
	}
	return ok, run
}

// run starts argv as the user and returns the function that pumps its I/O,
// waits for it and reports its exit.
func (ss *session) run(argv []string) (bool, func()) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.started {
		return false, nil
	}
	u := ss.user
	dir := u.Home
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = "/"
	}
	cmd := ss.srv.Host.UserCommand(u.UID, u.GID, u.Groups, argv, ss.environ(), dir, ss.slave)
	cmd.WaitDelay = waitDelay
	var stdin io.WriteCloser
	if ss.slave == nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			ss.srv.logf("%s: %v", u.Name, err)
			return false, nil
		}
		cmd.Stdout = ss.ch
		cmd.Stderr = ss.ch.Stderr()
	}
	if err := cmd.Start(); err != nil {
		ss.srv.logf("%s: start %s: %v", u.Name, argv[0], err)
		return false, nil
	}
	ss.started, ss.cmd = true, cmd
	if ss.slave != nil {
		ss.slave.Close() // the child has its own copy
		ss.slave = nil
	}
	master := ss.master
	return true, func() {
		var outDone chan struct{}
		if master != nil {
			go io.Copy(master, ss.ch)
			outDone = make(chan struct{})
			go func() {
				io.Copy(ss.ch, master) // ends with EIO when the last slave fd closes
				close(outDone)
			}()
		} else {
			go func() {
				io.Copy(stdin, ss.ch)
				stdin.Close()
			}()
		}
		err := cmd.Wait()
		if outDone != nil {
			select {
			case <-outDone:
			case <-time.After(waitDelay):
			}
		}
		ss.mu.Lock()
		ss.exited = true
		if master != nil {
			master.Close()
			ss.master = nil
		}
		ss.mu.Unlock()
		ss.exit(err)
	}
}

// exit reports how the process ended and closes the channel.
func (ss *session) exit(err error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	case errors.As(err, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Msg, Lang  string
			}{strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG"), ws.CoreDump(), "", ""}))
		} else {
			ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
		}
	default: // I/O cut short by WaitDelay (the process itself exited), or an in-process SFTP error
		code := 1
		if ss.cmd != nil && ss.cmd.ProcessState != nil {
			code = ss.cmd.ProcessState.ExitCode()
		}
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	}
	ss.ch.CloseWrite()
	ss.ch.Close()
}

func (ss *session) signal(name string) bool {
	sig := unix.SignalNum("SIG" + name)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if sig == 0 || ss.cmd == nil || ss.exited {
		return false
	}
	return ss.cmd.Process.Signal(sig) == nil
}

// hangup runs when the client closed the channel: a process still running
// gets SIGHUP, as a terminal hang-up would send it.
func (ss *session) hangup() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.agent != nil {
		ss.agent.close()
		ss.agent = nil
	}
	if ss.slave != nil {
		ss.slave.Close()
	}
	if ss.cmd != nil && !ss.exited {
		syscall.Kill(-ss.cmd.Process.Pid, syscall.SIGHUP) // its session's process group
	} else if !ss.started && ss.master != nil {
		ss.master.Close()
	}
}

// sftp serves the sftp subsystem: in-process when the user's uid and gid
// are the server's own (when the user's shell, too, would run with the
// server's credentials: see Host.UserCommand), else through SFTPCommand
// run as the user, so that SFTP never writes where the shell could not.
func (ss *session) sftp() (bool, func()) {
	u := ss.user
	if int(u.UID) != os.Getuid() || int(u.GID) != os.Getgid() {
		if len(ss.srv.SFTPCommand) == 0 {
			ss.srv.logf("%s: sftp refused: no SFTP helper command is configured to run as uid %d", u.Name, u.UID)
			return false, nil
		}
		ok, run := ss.run(ss.srv.SFTPCommand)
		if ok {
			ss.srv.logf("%s: sftp", u.Name)
		}
		return ok, run
	}
	ss.mu.Lock()
	if ss.started {
		ss.mu.Unlock()
		return false, nil
	}
	ss.started, ss.exited = true, true
	ss.mu.Unlock()
	ss.srv.logf("%s: sftp", u.Name)
	return true, func() {
		// The SFTP server must not close the channel: the exit status goes
		// out first (OpenSSH's scp fails without one).
		err := ServeSFTP(noClose{ss.ch}, u.Home)
		ss.exit(err)
	}
}

// ServeSFTP speaks SFTP on rw until the client ends, with relative paths
// resolved from dir.
func ServeSFTP(rw io.ReadWriteCloser, dir string) error {
	var opts []sftp.ServerOption
	if dir != "" {
		opts = append(opts, sftp.WithServerWorkingDirectory(dir))
	}
	srv, err := sftp.NewServer(rw, opts...)
	if err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	defer srv.Close()
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sftp: %w", err)
	}
	return nil
}

type noClose struct{ io.ReadWriter }

func (noClose) Close() error { return nil }

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { os.Stdin.Close(); return os.Stdout.Close() }

// SFTPMain is the body of the SFTP helper named by Server.SFTPCommand
// (keso-init re-executed as the user, e.g. `keso-init sftp-server`): it
// serves SFTP on stdin/stdout from the current directory and returns the
// process exit code.
func SFTPMain() int {
	dir, _ := os.Getwd()
	if err := ServeSFTP(stdio{}, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
