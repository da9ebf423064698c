package k3s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a started k3s.
type Process interface {
	Pid() int
	// Wait blocks until the process exits and says how (nil: exit 0).
	Wait() error
	Signal(sig os.Signal) error
}

// Starter starts k3s.
type Starter interface {
	Start(argv, env []string) (Process, error)
}

// Clock is the time source of the supervisor; tests use a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Health is what the supervisor knows about k3s, for the status file and
// for the upgrade's boot assessment.
type Health struct {
	Running   bool      `json:"running"`
	PID       int       `json:"pid,omitempty"`
	Starts    int       `json:"starts"`
	Restarts  int       `json:"restarts"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// LastExit is how the previous run ended ("exit status 1",
	// "signal: killed", or why it could not start).
	LastExit     string    `json:"last_exit,omitempty"`
	LastExitCode int       `json:"last_exit_code,omitempty"` // -1 when killed by a signal
	LastExitAt   time.Time `json:"last_exit_at,omitzero"`
	// NextStart is when a crashed k3s is started again.
	NextStart time.Time `json:"next_start,omitzero"`
	Stopped   bool      `json:"stopped,omitempty"` // stopped for shutdown
}

// Supervisor runs k3s and keeps it running: when it exits it is started
// again after a delay that doubles from MinBackoff up to MaxBackoff, and
// falls back to MinBackoff after a run that lasted StableAfter. When the
// context of Run ends, k3s gets SIGTERM, then SIGKILL after StopTimeout.
type Supervisor struct {
	Argv, Env []string
	Starter   Starter
	Clock     Clock     // nil: real time
	Log       io.Writer // one line per start and exit; nil discards

	MinBackoff  time.Duration // default 1s
	MaxBackoff  time.Duration // default 30s
	StableAfter time.Duration // default 60s
	StopTimeout time.Duration // default 30s

	mu     sync.Mutex
	health Health
}

func (s *Supervisor) defaults() {
	if s.Clock == nil {
		s.Clock = realClock{}
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.StableAfter == 0 {
		s.StableAfter = time.Minute
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = 30 * time.Second
	}
}

func (s *Supervisor) logf(format string, args ...any) {
	if s.Log != nil {
		fmt.Fprintf(s.Log, "keso: k3s: "+format+"\n", args...)
	}
}

// Health returns a snapshot of k3s's state.
func (s *Supervisor) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

func (s *Supervisor) update(f func(h *Health)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.health)
}

// Run starts k3s and supervises it until ctx is done; then it stops k3s
// and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	s.defaults()
	var delay time.Duration
	for {
		if ctx.Err() != nil {
			s.update(func(h *Health) { h.Stopped, h.NextStart = true, time.Time{} })
			return nil
		}
		started := s.Clock.Now()
		p, err := s.Starter.Start(s.Argv, s.Env)
		if err != nil {
			s.update(func(h *Health) {
				h.LastExit, h.LastExitCode, h.LastExitAt = "start: "+err.Error(), 0, started
			})
			s.logf("cannot start %s: %v", s.Argv[0], err)
		} else {
			s.update(func(h *Health) {
				h.Running, h.PID, h.StartedAt, h.NextStart = true, p.Pid(), started, time.Time{}
				h.Starts++
			})
			s.logf("started %v (pid %d)", s.Argv, p.Pid())
			waited := make(chan error, 1)
			go func() { waited <- p.Wait() }()
			select {
			case err := <-waited:
				s.exited(err)
			case <-ctx.Done():
				s.stop(p, waited)
				return nil
			}
		}
		// Back off: a run that lasted resets the delay.
		switch {
		case err == nil && s.Clock.Now().Sub(started) >= s.StableAfter, delay == 0:
			delay = s.MinBackoff
		default:
			delay = min(2*delay, s.MaxBackoff)
		}
		next := s.Clock.Now().Add(delay)
		s.update(func(h *Health) { h.NextStart = next })
		s.logf("restarting in %s", delay)
		select {
		case <-s.Clock.After(delay):
			s.update(func(h *Health) { h.Restarts++ })
		case <-ctx.Done():
			s.update(func(h *Health) { h.Stopped, h.NextStart = true, time.Time{} })
			return nil
		}
	}
}

// exited records how k3s ended.
func (s *Supervisor) exited(err error) {
	desc, code := "exit status 0", 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		desc, code = ee.Error(), ee.ExitCode()
	case err != nil:
		desc, code = err.Error(), -1
	}
	now := s.Clock.Now()
	s.update(func(h *Health) {
		h.Running, h.PID = false, 0
		h.LastExit, h.LastExitCode, h.LastExitAt = desc, code, now
	})
	s.logf("exited: %s", desc)
}

// stop ends k3s for shutdown: SIGTERM, then SIGKILL after StopTimeout.
func (s *Supervisor) stop(p Process, waited <-chan error) {
	s.logf("stopping (pid %d, SIGTERM)", p.Pid())
	p.Signal(syscall.SIGTERM)
	select {
	case err := <-waited:
		s.exited(err)
	case <-s.Clock.After(s.StopTimeout):
		s.logf("still running after %s; SIGKILL", s.StopTimeout)
		p.Signal(syscall.SIGKILL)
		s.exited(<-waited)
	}
	s.update(func(h *Health) { h.Stopped = true })
}

// ServiceStarter starts a service process; *host.Linux implements it.
type ServiceStarter interface {
	StartService(argv, env []string, out io.Writer) (*exec.Cmd, error)
}

// ExecStarter is the real Starter: k3s as a child process through the
// host, with its output to Out (the console or a log file).
type ExecStarter struct {
	Host ServiceStarter
	Out  io.Writer
}

// Start implements Starter.
func (e ExecStarter) Start(argv, env []string) (Process, error) {
	cmd, err := e.Host.StartService(argv, env, e.Out)
	if err != nil {
		return nil, err
	}
	return cmdProcess{cmd}, nil
}

type cmdProcess struct{ cmd *exec.Cmd }

func (c cmdProcess) Pid() int                   { return c.cmd.Process.Pid }
func (c cmdProcess) Wait() error                { return c.cmd.Wait() }
func (c cmdProcess) Signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }
