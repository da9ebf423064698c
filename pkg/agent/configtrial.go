package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/keso-os/keso/pkg/configtrial"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/k3s"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/runcmd"
	"github.com/keso-os/keso/pkg/status"
)

// configTrial is a running config trial (keso config apply --try): its
// record and, once k3s started, the health check that auto-confirms it.
type configTrial struct {
	t        *configtrial.Trial
	deadline time.Time
	health   atomic.Pointer[func(ctx context.Context) (bool, string)]
}

// startConfigTrial runs before the config is read: a pending trial's first
// boot is counted and its clock started; a trial boot that was begun before
// (the deadline passed, or the power was cut) returns to the previous
// config here, so this boot already runs it.
func (a *Agent) startConfigTrial(ctx context.Context) {
	out, err := configtrial.AtBoot(a.FS)
	if err != nil {
		fmt.Fprintf(a.Log, "keso: config trial: %v\n", err)
	}
	switch out.Action {
	case configtrial.Revert:
		reason := fmt.Sprintf("the trial of %s (applied %s) was not confirmed within %s",
			out.Trial.Source, out.Trial.Applied.Format(time.RFC3339), time.Duration(out.Trial.Try))
		fmt.Fprintf(a.Log, "keso: config trial: %s: returned to the previous config\n", reason)
		a.update(func(s *status.Status) { s.ConfigTrial = &status.ConfigTrial{State: "reverted", Reason: reason} })
		return
	case configtrial.Run:
	default:
		return
	}
	try := time.Duration(out.Trial.Try)
	a.cfgTrial = &configTrial{t: out.Trial, deadline: time.Now().Add(try)}
	how := "confirm with `keso config confirm`"
	if out.Trial.AutoConfirm {
		how += fmt.Sprintf(", or it is confirmed once the node is healthy on %v", out.Trial.Management)
	}
	fmt.Fprintf(a.Log, "keso: config trial: running %s for %s; %s, else the node returns to its previous config\n",
		out.Trial.Source, try, how)
	a.update(func(s *status.Status) {
		s.ConfigTrial = &status.ConfigTrial{State: "pending", Deadline: a.cfgTrial.deadline.UTC(), Source: out.Trial.Source}
	})
	go a.watchConfigTrial(ctx, a.cfgTrial)
}

// enableConfigTrialConfirm gives a running trial its health check, once
// k3s is started: the upgrade's health gate (k3s stable, the node Ready,
// keso.upgrade.health_checks), with k3s's stable time capped at a quarter
// of the trial so that a short trial can confirm.
func (a *Agent) enableConfigTrialConfirm(sup *k3s.Supervisor) {
	ct := a.cfgTrial
	if ct == nil || !ct.t.AutoConfirm {
		return
	}
	_, stable := a.cfg.Keso.Upgrade.GateTimes()
	stable = min(stable, time.Duration(ct.t.Try)/4)
	gate := healthGate{ready: a.kube.ready, runner: runcmd.Exec{}, env: a.env, timeout: DefaultHealthCheckTimeout}
	if u := a.cfg.Keso.Upgrade; u != nil {
		gate.checks = u.HealthChecks
	}
	f := func(ctx context.Context) (bool, string) {
		if ok, why := ct.t.Reachable(globalAddresses()); !ok {
			return false, why
		}
		return a.healthy(ctx, sup, stable, gate)
	}
	ct.health.Store(&f)
}

// watchConfigTrial ends the trial: confirmed by `keso config confirm` (the
// record is gone), auto-confirmed, or at the deadline a reboot, after which
// the boot reverts. If the reboot request is not taken (a phase of the
// trial config hangs before the agent serves requests), it reboots
// directly: a trial must never keep a box on an unconfirmed config.
func (a *Agent) watchConfigTrial(ctx context.Context, ct *configTrial) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	why := "not yet checked"
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := configtrial.Load(a.FS); errors.Is(err, configtrial.ErrNoTrial) {
			fmt.Fprintf(a.Log, "keso: config trial: %s confirmed: it stays\n", ct.t.Source)
			a.update(func(s *status.Status) { s.ConfigTrial = &status.ConfigTrial{State: "confirmed", Source: ct.t.Source} })
			return
		}
		if h := ct.health.Load(); h != nil && ct.t.AutoConfirm {
			var ok bool
			if ok, why = (*h)(ctx); ok {
				if _, err := configtrial.Confirm(a.FS); err != nil {
					fmt.Fprintf(a.Log, "keso: config trial: auto-confirm: %v\n", err)
					continue
				}
				fmt.Fprintf(a.Log, "keso: config trial: %s auto-confirmed: the node is healthy on %v\n", ct.t.Source, ct.t.Management)
				a.update(func(s *status.Status) {
					s.ConfigTrial = &status.ConfigTrial{State: "confirmed", Source: ct.t.Source, Reason: "auto-confirmed"}
				})
				return
			}
		}
		if time.Now().Before(ct.deadline) {
			continue
		}
		reason := fmt.Sprintf("not confirmed within %s", time.Duration(ct.t.Try))
		if ct.t.AutoConfirm {
			reason += " (last health check: " + why + ")"
		}
		fmt.Fprintf(a.Log, "keso: config trial: %s %s: rebooting to the previous config\n", ct.t.Source, reason)
		a.update(func(s *status.Status) {
			s.ConfigTrial = &status.ConfigTrial{State: "failed", Source: ct.t.Source, Deadline: ct.deadline.UTC(), Reason: reason}
		})
		select {
		case a.reqs <- &power.Request{Action: power.Reboot, Reason: "config trial " + reason}:
		default:
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Minute):
			fmt.Fprintf(a.Log, "keso: config trial: the reboot was not taken within 2m: rebooting now\n")
			host.Sync()
			if err := a.Host.Reboot(); err != nil {
				fmt.Fprintf(a.Log, "keso: config trial: reboot: %v\n", err)
			}
		}
		return
	}
}

// globalAddresses lists the node's global unicast addresses.
func globalAddresses() []string {
	var out []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
				out = append(out, ipn.IP.String())
			}
		}
	}
	return out
}
