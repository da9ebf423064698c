// Package runcmd runs the cloud-config's init_cmd, boot_cmd and run_cmd
// entries, and user-data scripts: each with a timeout, its output copied
// to the console prefixed with the phase name, each failure recorded
// against the entry's config path so the agent reports its file:line. A
// failing command never stops the next one.
//
// Side effects: the commands it runs (Exec starts processes).
package runcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

// DefaultTimeout bounds one command.
const DefaultTimeout = 5 * time.Minute

// Runner starts commands; the real one is os/exec (Exec).
type Runner interface {
	Run(ctx context.Context, argv, env []string, out io.Writer) error
}

// Exec runs commands with os/exec.
type Exec struct{}

// Run runs argv with env, output to out; it kills the process when ctx ends.
func (Exec) Run(ctx context.Context, argv, env []string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Run it by its full path: u-root's multi-call binary finds the
	// command through argv[0] (a bare "sh" would not resolve).
	if cmd.Path != "" && cmd.Err == nil {
		cmd.Args[0] = cmd.Path
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	return cmd.Run()
}

// Argv is how an entry runs: a shell line with `sh -c`, an argv as it is.
func Argv(c cloudconfig.Command) []string {
	if c.Argv != nil {
		return c.Argv
	}
	return []string{"/bin/sh", "-c", c.Shell}
}

// Options for Run.
type Options struct {
	Timeout time.Duration
	Env     []string
	Console io.Writer // command output goes here, line by line
}

// Run runs the entries of one list (name is "init_cmd", "boot_cmd" or
// "run_cmd", also the config path prefix) in order.
func Run(ctx context.Context, name string, cmds []cloudconfig.Command, r Runner, opt Options, rec *phase.Recorder) {
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	for i, c := range cmds {
		path := fmt.Sprintf("%s[%d]", name, i)
		argv := Argv(c)
		start := time.Now()
		out := &lineWriter{w: opt.Console, name: name}
		if opt.Console == nil {
			out.w = io.Discard
		}
		err := runOne(ctx, r, argv, opt.Env, timeout, out)
		out.Flush()
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case err == nil:
			rec.Change("ran", c.String(), "ok in "+took.String())
		case errors.Is(err, context.DeadlineExceeded):
			rec.Fail(path, fmt.Errorf("%s: timed out after %s", c.String(), timeout))
		default:
			rec.Fail(path, fmt.Errorf("%s: %v (after %s)", c.String(), err, took))
		}
	}
}

func runOne(ctx context.Context, r Runner, argv, env []string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := r.Run(ctx, argv, env, out)
	if ctx.Err() == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}

// lineWriter copies complete lines to w as "<name>: line"; Flush writes
// a last line without a newline. It is safe for the concurrent writes of
// a command's stdout and stderr.
type lineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	name string
	buf  []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(l.w, "%s: %s\n", l.name, strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes what is left.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		fmt.Fprintf(l.w, "%s: %s\n", l.name, l.buf)
		l.buf = nil
	}
}
