package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/keso-os/keso/pkg/check"
	"github.com/keso-os/keso/pkg/datadisk"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/k3s"
	"github.com/keso-os/keso/pkg/netconf"
	"github.com/keso-os/keso/pkg/ntp"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/sshd"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/sysconf"
	"github.com/keso-os/keso/pkg/users"
)

// boot is what the steps of one boot hand on to the later ones.
type boot struct {
	ctx      context.Context
	debug    bool     // keso.debug: a root shell on the console
	env      []string // the commands' environment; the environment phase adds the config's
	hostname string
	net      netconf.Result
	sup      *k3s.Supervisor
	end      *power.Request // set by a step that ends the boot (the silent install)
}

// step is one entry of the boot order: a phase, whose report goes into
// the status under Name, or (Phase false) a step that reports in its own
// way (a config load, a server started, the k3s hand-off).
type step struct {
	Name  string
	Phase bool
	Run   func(a *Agent, b *boot, rec *phase.Recorder) // rec is nil unless Phase
}

// steps is the boot order, written here only (the package doc points here).
var steps = []step{
	// A pending `keso config apply --try` trial: count this boot and start
	// its clock, or return to the previous config.
	{"config-trial", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.startConfigTrial(b.ctx) }},
	// Config from the image defaults, state, cidata/config-2/IMDS/http and the command line.
	{"datasource", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.loadConfig(b.ctx) }},
	// Before anything else is configured.
	{"init_cmd", true, func(a *Agent, b *boot, rec *phase.Recorder) { a.commands(b.ctx, "init_cmd", a.cfg.InitCmd, b.env, rec) }},
	{"hostname", true, func(a *Agent, b *boot, rec *phase.Recorder) { b.hostname = sysconf.Hostname(&a.cfg, a.FS, a.Host, rec) }},
	{"modules", true, func(a *Agent, b *boot, rec *phase.Recorder) { sysconf.Modules(&a.cfg, a.FS, a.Host, rec) }},
	{"sysctl", true, func(a *Agent, b *boot, rec *phase.Recorder) { sysconf.Sysctl(&a.cfg, a.FS, rec) }},
	{"disks", true, func(a *Agent, b *boot, rec *phase.Recorder) { datadisk.Apply(&a.cfg, a.FS, a.Host, rec) }},
	{"environment", true, func(a *Agent, b *boot, rec *phase.Recorder) {
		env := sysconf.Environment(&a.cfg, a.FS, rec)
		for _, k := range sortedKeys(env) {
			b.env = append(b.env, k+"="+env[k])
		}
		a.env = b.env
	}},
	// Users with their cached keys (github:/URL keys come online, below).
	{"users", true, func(a *Agent, b *boot, rec *phase.Recorder) { users.Apply(&a.cfg, a.FS, users.Options{}, rec) }},
	{"files", true, func(a *Agent, b *boot, rec *phase.Recorder) { sysconf.Files(&a.cfg, a.FS, rec) }},
	// After local setup, before the network.
	{"boot_cmd", true, func(a *Agent, b *boot, rec *phase.Recorder) { a.commands(b.ctx, "boot_cmd", a.cfg.BootCmd, b.env, rec) }},
	// SSH and the console logins start before the network, so a box with a
	// broken network config is still reachable on its console (and by SSH
	// on any address that does come up).
	{"sshd", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.startSSH(b.ctx) }},
	{"consoles", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.startConsoles(b.ctx, b.hostname, b.debug) }},
	// Links, Wi-Fi, addresses, routes, DHCP, resolv.conf, wait-online.
	{"network", true, func(a *Agent, b *boot, rec *phase.Recorder) {
		nl := host.NewNetlink()
		b.net = netconf.Run(b.ctx, a.joinWiFi(b.ctx), nl, nl, a.FS, rec)
	}},
	// The clock from ntp_servers (or DHCP's) before k3s needs it.
	{"ntp", true, func(a *Agent, b *boot, rec *phase.Recorder) {
		servers := a.cfg.Keso.NTPServers
		if len(servers) == 0 {
			servers = b.net.NTPServers()
		}
		if len(servers) == 0 {
			rec.Skip("no ntp_servers and none from DHCP")
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		ntp.Sync(ctx, servers, ntp.Client{}, a.Host, rec)
	}},
	// Users again, fetching github:/gitlab:/URL keys now that there is a network.
	{"users-online", true, func(a *Agent, b *boot, rec *phase.Recorder) {
		users.Apply(&a.cfg, a.FS, users.Options{Fetcher: users.HTTPFetcher{}}, rec)
	}},
	{"addresses", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.addresses() }},
	// Live or netboot with install.device (and install.silent): install,
	// report it (keso.report_url) and power off or reboot.
	{"install", false, func(a *Agent, b *boot, _ *phase.Recorder) {
		if (a.Boot.Mode == "live" || a.Boot.Mode == "netboot") && a.cfg.Keso.Install != nil && a.cfg.Keso.Install.Device != "" {
			b.end = a.install(b.ctx)
		}
	}},
	// What k3s needs from the kernel (keso check), into the status.
	{"check", false, func(a *Agent, b *boot, _ *phase.Recorder) {
		rep := check.Run(a.FS)
		a.update(func(s *status.Status) {
			s.Checks = map[string]string{}
			for _, r := range rep.Results {
				s.Checks[r.Name] = fmt.Sprintf("%s: %s", r.Status, r.Detail)
			}
		})
	}},
	// k3s's config file, modules, cgroup2, shared /; then the supervisor;
	// then the report (keso.report_url) that k3s started. From here a
	// config trial may be confirmed.
	{"k3s", false, func(a *Agent, b *boot, _ *phase.Recorder) {
		b.sup = a.startK3s(b.ctx)
		if b.sup != nil {
			a.report(b.ctx, "k3s", "k3s started "+sinceBoot())
		}
		a.kube = kubelet{fs: a.FS, plan: k3s.Plan(a.cfg), hostname: b.hostname}
		a.enableConfigTrialConfirm(b.sup)
	}},
	// After k3s started; then the user-data scripts.
	{"run_cmd", true, func(a *Agent, b *boot, rec *phase.Recorder) {
		a.commands(b.ctx, "run_cmd", a.cfg.RunCmd, b.env, rec)
		for i, s := range a.scripts {
			a.script(b.ctx, i, s, rec)
		}
	}},
	// On a trial boot, commit the slot once healthy (k3s up, the node Ready
	// through the kubelet's kubeconfig, keso.upgrade.health_checks) or give
	// the try up.
	{"upgrade", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.trial(b.ctx, b.sup) }},
	// In the background: keso.io/version, slot, committed and rollback on
	// the node's own Node (kubelet credentials), once the Node exists and
	// again after a trial commits.
	{"node", false, func(a *Agent, b *boot, _ *phase.Recorder) {
		if b.sup != nil {
			go a.annotator(b.ctx, a.kube, a.annotateAgain, 5*time.Second)
		}
	}},
	{"summary", false, func(a *Agent, b *boot, _ *phase.Recorder) { a.summary(b.hostname) }},
}

// runSteps runs the boot order. It returns the request of a step that
// ended the boot, or nil.
func (a *Agent) runSteps(b *boot) *power.Request {
	for _, s := range steps {
		if s.Phase {
			a.phase(s.Name, func(rec *phase.Recorder) { s.Run(a, b, rec) })
		} else {
			a.beat.mark(time.Now())
			s.Run(a, b, nil)
		}
		if b.end != nil {
			return b.end
		}
	}
	return nil
}

// commandEnv is the commands' environment before the config's own.
func commandEnv() []string { return []string{"PATH=" + sshd.DefaultPath, "HOME=/root"} }
