package agent

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/datasource"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/netconf"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/runcmd"
	"github.com/keso-os/keso/pkg/status"
)

// loadConfig gathers the config from every source and keeps the effective
// result; every diagnostic goes to the console and the status. A broken
// source never stops the boot: what validated is applied.
func (a *Agent) loadConfig(ctx context.Context) {
	col := datasource.Collect(ctx, datasource.Inputs{
		Files:    a.FS,
		Cmdline:  a.Cmdline,
		Fetchers: datasource.NodeFetchers(a.FS.Root),
		Log:      a.Log,
		// Bring up DHCP on the first link with a carrier only when a
		// network datasource needs it; the network phase configures the
		// links properly later.
		BeforeNetwork: func(ctx context.Context) error {
			nl := host.NewNetlink()
			rec := phase.NewRecorder("datasource-net", a.Log, nil)
			r := netconf.Run(ctx, cloudconfig.Config{}, nl, nl, a.FS, rec)
			if len(r.Leases) == 0 {
				return fmt.Errorf("no DHCP lease on any link")
			}
			return nil
		},
	})
	res := cloudconfig.Load(col.Sources...)
	a.where = func(p string) string {
		file, line, col, ok := res.Position(p)
		if !ok {
			return ""
		}
		return fmt.Sprintf("%s:%d:%d", file, line, col)
	}
	var warns, errs []string
	for _, d := range res.Diagnostics {
		fmt.Fprintf(a.Log, "keso: config: %s\n", d)
		if d.Severity == cloudconfig.Error {
			errs = append(errs, d.String())
		} else {
			warns = append(warns, d.String())
		}
	}
	a.cfg = res.Config
	a.scripts = res.Scripts
	rep := col.Report
	a.update(func(s *status.Status) {
		s.Warnings, s.Errors = warns, errs
		s.Phases = append(s.Phases, rep)
	})
	if y, err := res.YAML(); err == nil {
		if err := a.FS.WriteFileAtomic(EffectiveConfig, y, 0o600); err != nil {
			fmt.Fprintf(a.Log, "keso: config: %v\n", err)
		}
	}
}

// script runs a user-data script (`#!…`) by writing it to /run/keso and
// executing it, so the kernel honours its interpreter line.
func (a *Agent) script(ctx context.Context, i int, s cloudconfig.Script, rec *phase.Recorder) {
	p := fmt.Sprintf("/run/keso/scripts/user-data-%d", i)
	if err := a.FS.WriteFileAtomic(p, []byte(s.Content), 0o700); err != nil {
		rec.Fail("", fmt.Errorf("user-data script from %s: %w", s.Source, err))
		return
	}
	sub := phase.NewRecorder("script", a.Log, nil)
	runcmd.Run(ctx, "script", []cloudconfig.Command{{Argv: []string{a.FS.Path(p)}}}, runcmd.Exec{},
		runcmd.Options{Env: a.env, Console: a.Log, Timeout: 10 * time.Minute}, sub)
	r := sub.Done()
	for _, c := range r.Changes {
		rec.Change(c.Action, "user-data script from "+s.Source, c.Detail)
	}
	for _, f := range r.Failures {
		rec.Fail("", fmt.Errorf("user-data script from %s: %s", s.Source, f.Err))
	}
	_ = a.FS.Remove(path.Clean(p))
}
