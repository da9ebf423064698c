package host

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/mountinfo"
)

// OpenPTY allocates a pseudo-terminal pair from /dev/ptmx: the master side
// (kept by the SSH server) and the slave side (given to the shell as its
// controlling terminal). Needs devpts mounted on /dev/pts.
func (Linux) OpenPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		// No /dev/ptmx node: devpts's own multiplexer.
		m, err = os.OpenFile("/dev/pts/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty: unlock /dev/ptmx: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty: number of /dev/ptmx: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	s, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty %s: %w", name, err)
	}
	return m, s, nil
}

// EnsureDevpts mounts devpts on /dev/pts unless one is there, so that
// /dev/ptmx can hand out pseudo-terminals (the initrd stage mounts only a
// devtmpfs on /dev). It reports whether it mounted.
func (l Linux) EnsureDevpts() (bool, error) {
	mi, err := l.MountInfo()
	if err != nil {
		return false, fmt.Errorf("mount devpts: %w", err)
	}
	ms, _ := mountinfo.Parse(mi)
	for _, m := range ms {
		if m.MountPoint == "/dev/pts" && m.FSType == "devpts" {
			return false, nil
		}
	}
	if err := os.MkdirAll("/dev/pts", 0o755); err != nil {
		return false, fmt.Errorf("mount devpts: %w", err)
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0620,ptmxmode=0666"); err != nil {
		return false, fmt.Errorf("mount devpts on /dev/pts: %w", err)
	}
	return true, nil
}

// SetWinsize sets the window size of the terminal f (either side of a pty).
func (Linux) SetWinsize(f *os.File, rows, cols uint16) error {
	ws := &unix.Winsize{Row: rows, Col: cols}
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("set window size of %s: %w", f.Name(), err)
	}
	return nil
}

// UserCommand prepares argv to run as uid:gid (with the supplementary
// groups) in a new session. When uid and gid are those of the calling
// process the credential switch is skipped, so that an unprivileged test
// can run it; otherwise the caller must be root. When tty is not nil it
// becomes the controlling terminal and stdin/stdout/stderr of the command.
func (Linux) UserCommand(uid, gid uint32, groups []uint32, argv, env []string, dir string, tty *os.File) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	attr := &syscall.SysProcAttr{Setsid: true}
	if int(uid) != os.Getuid() || int(gid) != os.Getgid() {
		attr.Credential = &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
	}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		attr.Setctty = true
		attr.Ctty = 0 // fd 0 in the child, which is tty
	}
	cmd.SysProcAttr = attr
	return cmd
}
