package wifi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

// FS is the node's file system (host.FS): /sys/class/net is read through
// it and the configuration written.
type FS interface {
	ReadDir(p string) ([]fs.DirEntry, error)
	ReadFile(p string) ([]byte, error)
	Stat(p string) (fs.FileInfo, error)
	MkdirAll(p string, mode fs.FileMode) error
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
}

// Starter starts a long-running program (host.Linux.StartService).
type Starter interface {
	StartService(argv, env []string, out io.Writer) (*exec.Cmd, error)
}

// ModuleLoader loads a kernel module with its dependencies (the agent's
// modules.dep loader).
type ModuleLoader interface {
	Load(name string) error
}

// CryptoModules are the ciphers mac80211 asks the kernel's crypto API for
// (CCMP, GCMP, BIP). The kernel would request them from a modprobe that
// this system does not have, so they are loaded before the supplicant
// starts; without them an access point's or a station's key install
// fails. FullMAC drivers (brcmfmac on the Pi) do the crypto in firmware.
var CryptoModules = []string{"ctr", "ccm", "gcm", "ghash_generic", "cmac"}

// Controller talks to the supplicant's control socket (host.WPACtrl).
type Controller interface {
	Request(ctx context.Context, iface, cmd string) (string, error)
}

// Options tune Run; zero values take the defaults.
type Options struct {
	// LinkSettle is how long to wait for a wireless link to appear (a
	// driver loading its firmware); default 10s.
	LinkSettle time.Duration
	// WaitAssociated bounds the wait for wpa_state=COMPLETED; default 30s.
	WaitAssociated time.Duration
	// Restart is the pause before a supplicant that exited is started
	// again; default 5s.
	Restart time.Duration
}

func (o *Options) defaults() {
	if o.LinkSettle == 0 {
		o.LinkSettle = 10 * time.Second
	}
	if o.WaitAssociated == 0 {
		o.WaitAssociated = 30 * time.Second
	}
	if o.Restart == 0 {
		o.Restart = 5 * time.Second
	}
}

// Result is what Run did.
type Result struct {
	// Interface is the wireless link the supplicant runs on ("" if none).
	Interface string
	// Associated is true when wpa_state reached COMPLETED within the wait.
	Associated bool
	// SSID is the network joined.
	SSID string
	// Service stops the supplicant (append it to the agent's started
	// services); nil when none was started.
	Service *Service
}

// Links lists the network interfaces in kernel (ifindex) order, marking
// the wireless ones (/sys/class/net/<link>/wireless exists).
func Links(fsys FS) ([]Link, error) {
	ents, err := fsys.ReadDir("/sys/class/net")
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	type idx struct {
		l Link
		i int
	}
	var out []idx
	for _, e := range ents {
		n := e.Name()
		i := 1 << 30
		if b, err := fsys.ReadFile("/sys/class/net/" + n + "/ifindex"); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				i = v
			}
		}
		_, err := fsys.Stat("/sys/class/net/" + n + "/wireless")
		out = append(out, idx{Link{Name: n, Wireless: err == nil}, i})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].i < out[b].i })
	links := make([]Link, len(out))
	for i, o := range out {
		links[i] = o.l
	}
	return links, nil
}

// Run plans and applies the Wi-Fi phase for cfg: it waits up to
// LinkSettle for a wireless link, writes the configuration, starts the
// supplicant under a supervisor bound to ctx (give it the agent's
// lifetime context) and waits up to WaitAssociated for it to associate.
// Supplicant output goes to log, one "keso: wifi: " line per line.
func Run(ctx context.Context, cfg cloudconfig.Config, fsys FS, st Starter, ctl Controller, mods ModuleLoader, log io.Writer, opts Options, rec *phase.Recorder) Result {
	opts.defaults()
	if len(cfg.Keso.Wifi) == 0 {
		rec.Skip("no wifi networks in the config")
		return Result{}
	}
	var plan Plan
	var probs []Problem
	start := time.Now()
	for {
		links, err := Links(fsys)
		if err != nil {
			rec.Fail("keso.wifi", err)
			return Result{}
		}
		plan, probs = NewPlan(cfg, links)
		if plan.Interface != "" || time.Since(start) >= opts.LinkSettle || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for _, p := range probs {
		rec.Fail(p.Path, p.Err)
	}
	if plan.Interface == "" {
		return Result{}
	}
	if _, err := fsys.Stat(Supplicant); err != nil {
		rec.Fail("keso.wifi", fmt.Errorf("%s is not in this image (the profile's wifi: block ships it): %w", Supplicant, err))
		return Result{Interface: plan.Interface}
	}
	if mods != nil {
		var skipped []string
		for _, m := range CryptoModules {
			if err := mods.Load(m); err != nil {
				skipped = append(skipped, fmt.Sprintf("%s (%v)", m, err))
			}
		}
		if len(skipped) > 0 {
			// Not a failure: a FullMAC driver does not need them.
			rec.Change("skip", "crypto modules", strings.Join(skipped, "; ")+": mac80211 drivers cannot install keys without them")
		}
	}
	if err := fsys.MkdirAll("/run/keso", 0o755); err != nil {
		rec.Fail("keso.wifi", err)
		return Result{Interface: plan.Interface}
	}
	if err := fsys.WriteFileAtomic(ConfPath, plan.Conf, 0o600); err != nil {
		rec.Fail("keso.wifi", err)
		return Result{Interface: plan.Interface}
	}
	rec.Change("write", ConfPath, fmt.Sprintf("%d network(s): %s", len(plan.Networks), strings.Join(plan.Networks, ", ")))

	svc := startService(ctx, plan.Argv, st, &prefixWriter{w: log, prefix: "keso: wifi: "}, opts.Restart)
	rec.Change("start", "wpa_supplicant", plan.Interface)
	res := Result{Interface: plan.Interface, Service: svc}

	wctx, cancel := context.WithTimeout(ctx, opts.WaitAssociated)
	defer cancel()
	last := map[string]string{}
	for {
		if out, err := ctl.Request(wctx, plan.Interface, "STATUS"); err == nil {
			last = ParseStatus(out)
			if last["wpa_state"] == "COMPLETED" {
				res.Associated, res.SSID = true, last["ssid"]
				rec.Change("associated", plan.Interface, fmt.Sprintf("ssid %q, bssid %s, %s, %s",
					last["ssid"], last["bssid"], last["key_mgmt"], time.Since(start).Round(100*time.Millisecond)))
				return res
			}
		}
		select {
		case <-wctx.Done():
			state := last["wpa_state"]
			if state == "" {
				state = "no answer on the control socket " + CtrlDir + "/" + plan.Interface
			} else {
				state = "wpa_state=" + state
			}
			seen := "no scan results"
			sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
			if out, err := ctl.Request(sctx, plan.Interface, "SCAN_RESULTS"); err == nil {
				seen = InRange(out)
			}
			scancel()
			rec.Fail("keso.wifi", fmt.Errorf("%s: not associated with %s within %s (%s; %s); wpa_supplicant keeps trying",
				plan.Interface, strings.Join(plan.Networks, " or "), opts.WaitAssociated, state, seen))
			return res
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// InRange summarises a SCAN_RESULTS reply (a header line, then bssid,
// frequency, signal, flags and SSID separated by tabs) for a message:
// "networks in range: shop [WPA2-PSK-CCMP][ESS], …".
func InRange(scan string) string {
	var nets []string
	for _, l := range strings.Split(scan, "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 5 || strings.HasPrefix(l, "bssid /") {
			continue
		}
		ssid := f[4]
		if ssid == "" {
			ssid = "(hidden)"
		}
		nets = append(nets, fmt.Sprintf("%q %s", ssid, f[3]))
	}
	if len(nets) == 0 {
		return "no networks in range"
	}
	return "networks in range: " + strings.Join(nets, ", ")
}

// ParseStatus parses a control socket STATUS reply (key=value lines).
func ParseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Service supervises the supplicant: started again after Restart when it
// exits, stopped (SIGTERM, then SIGKILL at the stop deadline) by Stop.
type Service struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startService(ctx context.Context, argv []string, st Starter, out io.Writer, restart time.Duration) *Service {
	sctx, cancel := context.WithCancel(ctx)
	s := &Service{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for sctx.Err() == nil {
			cmd, err := st.StartService(argv, nil, out)
			if err != nil {
				fmt.Fprintf(out, "%v; retrying in %s\n", err, restart)
			} else {
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				select {
				case err := <-exited:
					fmt.Fprintf(out, "wpa_supplicant exited (%v); restarting in %s\n", err, restart)
				case <-sctx.Done():
					cmd.Process.Signal(syscall.SIGTERM)
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						cmd.Process.Kill()
						<-exited
					}
					return
				}
			}
			select {
			case <-time.After(restart):
			case <-sctx.Done():
			}
		}
	}()
	return s
}

// Name is the service's name for power.Stopper.
func (s *Service) Name() string { return "wpa_supplicant" }

// Stop stops the supplicant and waits until it has exited or ctx ends.
func (s *Service) Stop(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wpa_supplicant did not stop in time")
	}
}

// prefixWriter writes each complete line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if p.w == nil {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
