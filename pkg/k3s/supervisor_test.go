package k3s

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
)

type fakeAfter struct {
	d  time.Duration
	ch chan time.Time
}

// fakeClock hands each After to the test, which fires it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	afters chan fakeAfter
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), afters: make(chan fakeAfter, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.afters <- fakeAfter{d, ch}
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fakeProc struct {
	pid        int
	exit       chan error
	ignoreTerm bool
	mu         sync.Mutex
	signals    []os.Signal
}

func (p *fakeProc) Pid() int    { return p.pid }
func (p *fakeProc) Wait() error { return <-p.exit }
func (p *fakeProc) Signal(sig os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	p.mu.Lock()
	ignore := p.ignoreTerm
	p.mu.Unlock()
	if sig == syscall.SIGKILL || !ignore {
		select {
		case p.exit <- errors.New("signal: " + sig.String()):
		default:
		}
	}
	return nil
}

type fakeStarter struct {
	started chan *fakeProc
	fail    chan error // an error here makes the next Start fail
	n       int
}

func (s *fakeStarter) Start(argv, env []string) (Process, error) {
	select {
	case err := <-s.fail:
		return nil, err
	default:
	}
	s.n++
	p := &fakeProc{pid: 100 + s.n, exit: make(chan error, 1)}
	s.started <- p
	return p, nil
}

func newSupervised(t *testing.T) (*Supervisor, *fakeStarter, *fakeClock, context.CancelFunc, chan error) {
	st := &fakeStarter{started: make(chan *fakeProc), fail: make(chan error, 1)}
	clk := newFakeClock()
	s := &Supervisor{Argv: []string{Binary, "server"}, Starter: st, Clock: clk, StopTimeout: 20 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return s, st, clk, cancel, done
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitHealth waits until the supervisor's health satisfies ok (it is
// updated right after the fake starter hands the process to the test).
func waitHealth(t *testing.T, s *Supervisor, ok func(Health) bool) Health {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := s.Health()
		if ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %+v never reached the wanted state", h)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSupervisorBackoff(t *testing.T) {
	s, st, clk, cancel, done := newSupervised(t)
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		p := recv(t, st.started, "start")
		if h := waitHealth(t, s, func(h Health) bool { return h.Running }); h.PID != p.pid || h.Restarts != i {
			t.Errorf("run %d: health %+v, want running pid %d with %d restarts", i, h, p.pid, i)
		}
		clk.advance(time.Second) // a short run
		p.exit <- errors.New("exit status 1")
		a := recv(t, clk.afters, "backoff")
		if a.d != w*time.Second {
			t.Errorf("backoff after crash %d: got %s, want %s", i+1, a.d, w*time.Second)
		}
		if h := s.Health(); h.Running || h.LastExit != "exit status 1" || h.NextStart.IsZero() {
			t.Errorf("after crash %d: health %+v, want not running, last exit recorded, next start set", i+1, h)
		}
		clk.advance(a.d)
		a.ch <- clk.Now()
	}
	// A run that lasted StableAfter resets the backoff.
	p := recv(t, st.started, "start")
	clk.advance(2 * time.Minute)
	p.exit <- errors.New("exit status 2")
	if a := recv(t, clk.afters, "backoff"); a.d != time.Second {
		t.Errorf("backoff after a stable run: got %s, want 1s", a.d)
	} else {
		a.ch <- clk.Now()
	}
	// A start that fails backs off too.
	st.fail <- errors.New("exec format error")
	if a := recv(t, clk.afters, "backoff"); a.d != 2*time.Second {
		t.Errorf("backoff after a failed start: got %s, want 2s", a.d)
	} else if h := s.Health(); h.LastExit != "start: exec format error" {
		t.Errorf("after a failed start: last exit %q, want the start error", h.LastExit)
	} else {
		a.ch <- clk.Now()
	}
	p = recv(t, st.started, "start")
	waitHealth(t, s, func(h Health) bool { return h.Running })
	cancel()
	if err := recv(t, done, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
	h := s.Health()
	if h.Running || !h.Stopped || h.Starts != 9 || h.Restarts != 9 {
		t.Errorf("after stop: health %+v, want stopped, 9 starts, 9 restarts", h)
	}
	if len(p.signals) != 1 || p.signals[0] != syscall.SIGTERM {
		t.Errorf("signals on stop: %v, want [SIGTERM]", p.signals)
	}
}

func TestSupervisorKillsAfterTimeout(t *testing.T) {
	s, st, clk, cancel, done := newSupervised(t)
	p := recv(t, st.started, "start")
	p.mu.Lock()
	p.ignoreTerm = true
	p.mu.Unlock()
	waitHealth(t, s, func(h Health) bool { return h.Running })
	cancel()
	a := recv(t, clk.afters, "stop timeout")
	if a.d != 20*time.Second {
		t.Errorf("stop timeout: got %s, want 20s", a.d)
	}
	a.ch <- clk.Now()
	recv(t, done, "Run to return")
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.signals) != 2 || p.signals[0] != syscall.SIGTERM || p.signals[1] != syscall.SIGKILL {
		t.Errorf("signals: %v, want SIGTERM then SIGKILL", p.signals)
	}
	if h := s.Health(); h.Running || !h.Stopped || h.LastExit != "signal: killed" {
		t.Errorf("health %+v: want stopped, last exit signal: killed", h)
	}
}

// The real starter: processes through host.Linux, real time, short delays.
func TestSupervisorRealProcesses(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(argv []string, stopTimeout time.Duration, until func(Health) bool) (seen, final Health) {
		t.Helper()
		s := &Supervisor{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}, Starter: ExecStarter{Host: host.Linux{}},
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, StopTimeout: stopTimeout}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for seen = s.Health(); !until(seen); seen = s.Health() {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("%v: health %+v never reached the wanted state", argv, s.Health())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := recv(t, done, "Run to return"); err != nil {
			t.Errorf("Run: %v", err)
		}
		return seen, s.Health()
	}
	h, _ := run([]string{script("crash", "exit 3")}, time.Second, func(h Health) bool { return h.Restarts >= 3 })
	if h.LastExit != "exit status 3" || h.LastExitCode != 3 || h.Starts < 3 {
		t.Errorf("crashing k3s: health %+v, want restarts with exit status 3", h)
	}
	// Each script says when its trap is set (a SIGTERM before that kills
	// the shell, as a loaded machine showed): the stop waits for it.
	trapped := func(name string) func(Health) bool {
		return func(h Health) bool {
			_, err := os.Stat(filepath.Join(dir, name+".ready"))
			return h.Running && err == nil
		}
	}
	_, h = run([]string{script("polite", "trap 'exit 0' TERM\n: > "+filepath.Join(dir, "polite.ready")+"\nwhile :; do sleep 0.05; done")}, 10*time.Second, trapped("polite"))
	if h.LastExit != "exit status 0" || h.Restarts != 0 || !h.Stopped {
		t.Errorf("k3s stopping on SIGTERM: health %+v, want exit status 0, no restart", h)
	}
	start := time.Now()
	_, h = run([]string{script("stubborn", "trap '' TERM\n: > "+filepath.Join(dir, "stubborn.ready")+"\nwhile :; do sleep 0.05; done")}, 300*time.Millisecond, trapped("stubborn"))
	if h.LastExit != "signal: killed" || h.LastExitCode != -1 {
		t.Errorf("k3s ignoring SIGTERM: health %+v, want killed", h)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("k3s ignoring SIGTERM was killed after %s, before the 300ms stop timeout", el)
	}
	_, h = run([]string{filepath.Join(dir, "missing")}, time.Second, func(h Health) bool { return h.Restarts >= 2 })
	if h.Starts != 0 || h.LastExit == "" {
		t.Errorf("missing binary: health %+v, want no start and the start error", h)
	}
}
