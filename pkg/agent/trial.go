package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/k3s"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/runcmd"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/upgrade"
)

// withESP mounts the EFI system partition (on the Pi card: the FAT boot
// partition, bootPartition), runs f on its boot loader and unmounts it.
// The ESP stays unmounted otherwise, so a power cut cannot catch it dirty.
func (a *Agent) withESP(f func(bl bootloader.Loader) error) error {
	dev, loc, err := a.bootPartition()
	if err != nil {
		return err
	}
	for _, m := range []string{"vfat", "nls_cp437", "nls_ascii", "nls_utf8"} {
		if err := a.mods.Load(m); err != nil {
			fmt.Fprintf(a.Log, "keso: upgrade: %v\n", err)
		}
	}
	mp := a.FS.Path("/run/keso/esp")
	if err := a.Host.Mount(dev, mp, "vfat", 0, ""); err != nil {
		return err
	}
	defer func() {
		host.Sync()
		if err := a.Host.Unmount(mp); err != nil {
			fmt.Fprintf(a.Log, "keso: upgrade: %v\n", err)
		}
	}()
	return f(bootloader.LoaderOn(host.FS{Root: mp}, loc))
}

// trial assesses the boot (disk mode): it records a rollback that happened,
// and on a trial boot starts the health gate that commits the slot once the
// node is healthy, or gives this try up (reboot) at the deadline.
func (a *Agent) trial(ctx context.Context, sup *k3s.Supervisor) {
	slot := bootloader.Slot(a.Boot.Slot)
	if a.Boot.Mode != "disk" || !slot.Valid() {
		return
	}
	var bs upgrade.BootStatus
	err := a.withESP(func(bl bootloader.Loader) error {
		var err error
		bs, err = upgrade.AssessBoot(bl, a.FS, slot, a.Boot.Version, time.Now())
		if err == nil {
			fmt.Fprintf(a.Log, "keso: upgrade: %s\n", assessLine(bs, bl))
		}
		return err
	})
	if err != nil {
		fmt.Fprintf(a.Log, "keso: upgrade: assess boot: %v\n", err)
		return
	}
	if bs.Interrupted != "" {
		fmt.Fprintf(a.Log, "keso: upgrade: %s\n", bs.Interrupted)
	}
	if r := bs.LastRollback; r != nil {
		fmt.Fprintf(a.Log, "keso: upgrade: last rollback: %s → %s: %s\n", r.FromVersion, r.ToVersion, r.Reason)
	}
	a.update(func(s *status.Status) { s.Upgrade = &bs })
	if !bs.Trial {
		return
	}
	timeout, stable := a.cfg.Keso.Upgrade.GateTimes()
	gate := healthGate{ready: a.kube.ready, runner: runcmd.Exec{}, env: a.env, timeout: DefaultHealthCheckTimeout}
	if u := a.cfg.Keso.Upgrade; u != nil {
		gate.checks = u.HealthChecks
	}
	fmt.Fprintf(a.Log, "keso: upgrade: trial boot of slot %s (%d tries left): committing when healthy, within %s\n", slot, bs.TriesLeft, timeout)
	a.update(func(s *status.Status) { s.Health = "pending" })
	go func() {
		deadline := time.Now().Add(timeout)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ok, why := a.healthy(ctx, sup, stable, gate)
			if ok {
				err := a.withESP(func(bl bootloader.Loader) error {
					return upgrade.MarkHealthyBoot(bl, a.FS, slot, a.Boot.Version, time.Now())
				})
				if err != nil {
					fmt.Fprintf(a.Log, "keso: upgrade: commit slot %s: %v\n", slot, err)
					continue
				}
				fmt.Fprintf(a.Log, "keso: upgrade: slot %s is healthy: committed\n", slot)
				a.update(func(s *status.Status) {
					s.Health = "healthy"
					if s.Upgrade != nil {
						s.Upgrade.Trial, s.Upgrade.Committed, s.Upgrade.TriesLeft = false, true, 0
						s.Upgrade.LastCommit = &upgrade.Commit{Version: a.Boot.Version, Slot: slot, At: time.Now().UTC()}
					}
				})
				// Commit first, then tell the cluster: an annotation that
				// fails is retried and never undoes the commit.
				a.reannotate()
				return
			}
			reason := ""
			if sup != nil {
				if hopeless, r := cannotPass(time.Now(), deadline, sup.Health(), stable); hopeless {
					reason = fmt.Sprintf("cannot be healthy within %s: %s", timeout, r)
				}
			}
			if time.Now().After(deadline) {
				reason = fmt.Sprintf("not healthy within %s: %s", timeout, why)
			}
			if reason != "" {
				fmt.Fprintf(a.Log, "keso: upgrade: slot %s %s; giving this try up\n", slot, reason)
				upgrade.RecordFailure(a.FS, reason)
				a.update(func(s *status.Status) { s.Health = "failed: " + reason })
				a.reqs <- &power.Request{Action: power.Reboot, Reason: "trial boot failed: " + reason}
				return
			}
		}
	}()
}

// cannotPass reports whether a try can no longer pass the health gate
// before its deadline, and why: k3s must run for stable without exiting,
// and the earliest it can have done so (from its current start, or from
// its next one while it is down) is after the deadline. The gate then
// gives the try up at once instead of waiting the deadline out, so a k3s
// that crash-loops costs a try only until its last chance is gone.
func cannotPass(now, deadline time.Time, h k3s.Health, stable time.Duration) (bool, string) {
	if h.Stopped {
		return false, ""
	}
	start := h.StartedAt
	if !h.Running {
		start = now
		if h.NextStart.After(now) {
			start = h.NextStart
		}
	}
	if earliest := start.Add(stable); earliest.After(deadline) {
		return true, fmt.Sprintf("k3s must run %s without exiting and the try ends before it can (%d restarts, last exit: %s)", stable, h.Restarts, h.LastExit)
	}
	return false, ""
}

// healthy is the trial's health check: every phase ran (they have, by the
// time the gate starts), k3s has run for stable without exiting, the node
// is Ready as its kubelet's credentials read it (k3s writes them on
// servers and agents alike; a server without an agent: the API server's
// /readyz), and the user's keso.upgrade.health_checks exit 0.
func (a *Agent) healthy(ctx context.Context, sup *k3s.Supervisor, stable time.Duration, gate healthGate) (bool, string) {
	if sup == nil {
		return false, "k3s cannot start (see the k3s phase)"
	}
	h := sup.Health()
	if !h.Running {
		if h.LastExit != "" {
			return false, fmt.Sprintf("k3s is not running (%d restarts, last exit: %s)", h.Restarts, h.LastExit)
		}
		return false, "k3s is not running"
	}
	if up := time.Since(h.StartedAt); up < stable {
		return false, fmt.Sprintf("k3s up for %s of %s (%d restarts, last exit: %s)", up.Round(time.Second), stable, h.Restarts, h.LastExit)
	}
	return gate.check(ctx)
}

// reannotate asks the annotator to write the node's annotations again.
func (a *Agent) reannotate() {
	select {
	case a.annotateAgain <- struct{}{}:
	default: // one is pending already
	}
}
