// Package agent is the boot agent's system stage after the root is
// mounted: it gathers the cloud-config from every source, applies it in
// named phases (each one's failures reported against the config's
// file:line, none stopping the others), starts the SSH server and the
// console logins, hands the node to k3s and supervises it, gates a trial
// boot of a new version on the node's health, keeps /run/keso/status.json
// current, and on a power request stops everything in order (pkg/power).
//
// The boot order (config trial, datasource, init_cmd, the local phases,
// boot_cmd, SSH and consoles, network, ntp, users online, install, check,
// k3s, run_cmd, the upgrade gate, the node annotations) is the table steps
// in steps.go, each entry with what it does; Run runs it in one loop.
package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/bootreport"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/console"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/initrd"
	"github.com/keso-os/keso/pkg/kmod"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/runcmd"
	"github.com/keso-os/keso/pkg/sshd"
	"github.com/keso-os/keso/pkg/status"
)

// EffectiveConfig is where the merged config is kept for `keso` commands.
const EffectiveConfig = "/run/keso/config.yaml"

// Agent runs the system stage. Host is the real machine; the agent is
// exercised by the QEMU end-to-end tests, its parts by their own tests.
type Agent struct {
	FS      host.FS
	Host    host.Linux
	Log     io.Writer
	Boot    initrd.Info // the boot record
	Cmdline string

	st      status.Status
	stMu    sync.Mutex
	where   func(string) string
	reqs    chan *power.Request
	cfg     cloudconfig.Config
	env     []string
	mods    *kmod.Loader
	started []power.Stopper
	scripts []cloudconfig.Script
	beat    progress // the watchdog's heartbeat
	// kube reaches the node's own Node with the kubelet's credentials;
	// annotateAgain asks the annotator to write the annotations again.
	kube          kubelet
	annotateAgain chan struct{}
	// ring keeps the console log the agent ships to keso.report_url.
	ring *bootreport.Ring
	// cfgTrial is the config trial this boot runs, if any.
	cfgTrial *configTrial
}

// Run applies the config and supervises the node until a power request;
// then it stops everything and performs it. It returns only if the final
// reboot or power-off fails.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.reqs = make(chan *power.Request, 8)
	a.ring = bootreport.NewRing(256 << 10)
	a.Log = io.MultiWriter(a.Log, a.ring)
	a.annotateAgain = make(chan struct{}, 1)
	a.st = status.Status{Version: a.Boot.Version, Mode: string(a.Boot.Mode), Slot: a.Boot.Slot}
	a.mods = kmod.NewLoader(a.FS, a.Host)
	params := cmdline.Parse(a.Cmdline)
	_, debug := params.Get("keso.debug")

	go a.Host.ReapOrphans(ctx, 2*time.Second)
	if _, err := a.Host.EnsureDevpts(); err != nil {
		fmt.Fprintf(a.Log, "keso: %v (no pseudo-terminals for SSH sessions)\n", err)
	}
	a.watchPower(ctx)
	wd, _ := params.Get("keso.watchdog")
	a.armWatchdog(ctx, wd == "0")
	// evdev and the ACPI button driver make the power button an input event.
	for _, m := range []string{"evdev", "button"} {
		a.mods.Load(m)
	}

	b := &boot{ctx: ctx, debug: debug, env: commandEnv()}
	if req := a.runSteps(b); req != nil {
		return a.shutdown(req)
	}
	sup := b.sup
	a.refresh(sup)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case req := <-a.reqs:
			return a.shutdown(req)
		case <-tick.C:
			a.beat.mark(time.Now())
			a.refresh(sup)
		}
	}
}

// phase runs one named phase and records its report in the status.
func (a *Agent) phase(name string, f func(rec *phase.Recorder)) {
	a.beat.mark(time.Now())
	rec := phase.NewRecorder(name, a.Log, a.where)
	f(rec)
	rep := rec.Done()
	a.update(func(s *status.Status) { s.Phases = append(s.Phases, rep) })
}

// update changes the status and writes it.
func (a *Agent) update(f func(s *status.Status)) {
	a.stMu.Lock()
	defer a.stMu.Unlock()
	f(&a.st)
	a.st.Updated = time.Now().UTC()
	if err := status.Write(a.FS, a.st); err != nil {
		fmt.Fprintf(a.Log, "keso: status: %v\n", err)
	}
}

func (a *Agent) commands(ctx context.Context, name string, cmds []cloudconfig.Command, env []string, rec *phase.Recorder) {
	if len(cmds) == 0 {
		return
	}
	runcmd.Run(ctx, name, cmds, runcmd.Exec{}, runcmd.Options{Env: env, Console: a.Log}, rec)
}

// watchPower turns signals and the power button into power requests:
// SIGINT (ctrl-alt-del, and `keso reboot`) and SIGTERM reboot; SIGUSR2 and
// SIGPWR (and `keso poweroff`) power off, as busybox init does.
func (a *Agent) watchPower(ctx context.Context) {
	a.Host.CtrlAltDelToInit()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGPWR)
	button := a.Host.PowerButton(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGUSR2, syscall.SIGPWR:
					a.reqs <- &power.Request{Action: power.PowerOff, Reason: "signal " + s.String()}
				default:
					a.reqs <- &power.Request{Action: power.Reboot, Reason: "signal " + s.String()}
				}
			case <-button:
				a.reqs <- &power.Request{Action: power.PowerOff, Reason: "power button"}
			}
		}
	}()
}

func (a *Agent) shutdown(req *power.Request) error {
	a.update(func(s *status.Status) { s.K3s.Running = false })
	return power.Handle(req, a.started, a.Host, power.DefaultTimeout, a.Log)
}

// stopper adapts a cancel function and a done channel to power.Stopper.
type stopper struct {
	name   string
	cancel func()
	done   <-chan struct{}
}

func (s stopper) Name() string { return s.name }
func (s stopper) Stop(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("did not stop in time")
	}
}

func (a *Agent) startSSH(ctx context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	srv := &sshd.Server{Config: sshd.ConfigFrom(a.cfg), FS: a.FS, Host: a.Host, Passwords: sshd.Shadow{FS: a.FS}, Log: a.Log,
		SFTPCommand: []string{"/usr/sbin/keso-init", "sftp-server"}}
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			if err := srv.ListenAndServe(sctx); err != nil && sctx.Err() == nil {
				fmt.Fprintf(a.Log, "keso: sshd: %v; restarting in 5s\n", err)
				select {
				case <-time.After(5 * time.Second):
				case <-sctx.Done():
				}
			}
		}
	}()
	a.started = append(a.started, stopper{"sshd", cancel, done})
}

func (a *Agent) startConsoles(ctx context.Context, hostname string, debug bool) {
	for _, dev := range console.Devices(a.FS) {
		go func() {
			c := &console.Console{FS: a.FS, Runner: console.HostRunner{}, Hostname: hostname, Issue: a.issue(), Rescue: debug}
			for ctx.Err() == nil {
				tty, err := a.Host.OpenTerminal(dev)
				if err != nil {
					time.Sleep(5 * time.Second)
					continue
				}
				c.Issue = a.issue()
				c.Serve(ctx, tty)
				tty.Close()
			}
		}()
	}
}

func (a *Agent) issue() string {
	a.stMu.Lock()
	defer a.stMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "keso %s (%s mode", a.st.Version, a.st.Mode)
	if a.st.Slot != "" {
		fmt.Fprintf(&b, ", slot %s", strings.ToUpper(a.st.Slot))
	}
	b.WriteString(")")
	if len(a.st.Addresses) > 0 {
		fmt.Fprintf(&b, "  ssh rancher@%s", a.st.Addresses[0])
	}
	return b.String() + "\n"
}

// addresses records the node's global addresses in the status.
func (a *Agent) addresses() {
	out := globalAddresses()
	a.update(func(s *status.Status) { s.Addresses = out })
}

func (a *Agent) summary(hostname string) {
	a.stMu.Lock()
	st := a.st
	a.stMu.Unlock()
	failed := 0
	for _, p := range st.Phases {
		failed += len(p.Failures)
	}
	fmt.Fprintf(a.Log, "\nkeso %s on %s: %s mode", st.Version, hostname, st.Mode)
	if st.Slot != "" {
		fmt.Fprintf(a.Log, ", slot %s", strings.ToUpper(st.Slot))
	}
	fmt.Fprintf(a.Log, "; %d phases, %d failures, %d config errors\n", len(st.Phases), failed, len(st.Errors))
	for _, ad := range st.Addresses {
		fmt.Fprintf(a.Log, "keso: ssh rancher@%s\n", ad)
	}
	fmt.Fprintf(a.Log, "keso: ready (keso-init resident memory %d KiB)\n", rssKiB())
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
