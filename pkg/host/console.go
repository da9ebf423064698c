package host

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// Terminal is a console device (serial port, VGA virtual terminal or pty
// slave) opened for a login prompt.
type Terminal struct {
	f *os.File
}

// OpenTerminal opens path without making it keso-init's controlling
// terminal and puts it in canonical mode with echo, CR/NL translation and
// signals, the state a login prompt expects.
func (Linux) OpenTerminal(path string) (*Terminal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open terminal %s: %w", path, err)
	}
	t := &Terminal{f: f}
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("terminal %s: TCGETS: %w", path, err)
	}
	tio.Iflag |= unix.ICRNL
	tio.Iflag &^= unix.INLCR | unix.IGNCR
	tio.Oflag |= unix.OPOST | unix.ONLCR
	tio.Lflag |= unix.ICANON | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, tio); err != nil {
		f.Close()
		return nil, fmt.Errorf("terminal %s: TCSETS: %w", path, err)
	}
	return t, nil
}

// NewTerminal wraps an already open terminal file (a pty slave).
func NewTerminal(f *os.File) *Terminal { return &Terminal{f: f} }

// Read reads from the terminal.
func (t *Terminal) Read(b []byte) (int, error) { return t.f.Read(b) }

// Write writes to the terminal.
func (t *Terminal) Write(b []byte) (int, error) { return t.f.Write(b) }

// File is the terminal's file, for a child's stdin/stdout/stderr.
func (t *Terminal) File() *os.File { return t.f }

// Close closes the terminal.
func (t *Terminal) Close() error { return t.f.Close() }

// SetEcho turns the terminal's echo on or off (off while a password is
// typed).
func (t *Terminal) SetEcho(on bool) error {
	fd := int(t.f.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("terminal %s: TCGETS: %w", t.f.Name(), err)
	}
	if on {
		tio.Lflag |= unix.ECHO
	} else {
		tio.Lflag &^= unix.ECHO
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("terminal %s: TCSETS: %w", t.f.Name(), err)
	}
	return nil
}

// RunOn runs argv with its standard input from in and its output to out
// (the console), with env added to the environment, and waits for it: the
// rescue shell's way to run a program.
func (Linux) RunOn(in, out *os.File, env []string, argv ...string) error {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = in, out, out
	c.Env = append(os.Environ(), env...)
	if err := c.Run(); err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return nil
}

// KernelRelease is the running kernel's release (uname -r), or "".
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Console returns /dev/console for writing, or stderr when it cannot be
// opened: where keso-init writes.
func Console() *os.File {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		return f
	}
	return os.Stderr
}
