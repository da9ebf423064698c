package console

import (
	"context"
	"fmt"
	"os"

	"github.com/keso-os/keso/pkg/host"
)

// HostRunner runs the shell for real through host.Linux: as the user, in a
// new session, with the terminal (which must be an *os.File, such as
// host.Terminal) as its controlling TTY. The shell runs as a login shell
// (argv[0] "-sh") in the user's home directory, falling back to / when the
// home is missing.
type HostRunner struct{}

// fileTerminal is a Terminal backed by a file descriptor.
type fileTerminal interface {
	Terminal
	File() *os.File
}

// Run implements Runner.
func (HostRunner) Run(ctx context.Context, s Session, t Terminal) error {
	ft, ok := t.(fileTerminal)
	if !ok {
		return fmt.Errorf("console: terminal %T is not a device file", t)
	}
	dir := s.User.Home
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = "/"
	}
	cmd := host.Linux{}.UserCommand(uint32(s.User.UID), uint32(s.User.GID), s.Groups, []string{s.Shell}, s.Env, dir, ft.File())
	// argv[0] stays the shell's path rather than the "-sh" login form:
	// u-root's multi-call binary picks the command from argv[0].
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s as %s: %w", s.Shell, s.User.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			if _, exited := err.(interface{ ExitCode() int }); exited {
				return nil // the shell's own exit status is the user's business
			}
		}
		return err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}
