package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/keso-os/keso/pkg/install"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
)

// install runs the silent install of the "USB stick that installs the
// store box" (or of a netbooted rack machine whose server says install):
// with install.device and install.silent in a live or netboot boot it
// writes the disk, saves the config, and powers off (install.power_off) or
// reboots. It returns the power request, or nil when it did not install.
func (a *Agent) install(ctx context.Context) *power.Request {
	in := a.cfg.Keso.Install
	if !in.Silent {
		fmt.Fprintf(a.Log, "keso: install: install.device is %s; run `keso install` to install (set install.silent to install at boot)\n", in.Device)
		return nil
	}
	var req *power.Request
	a.phase("install", func(rec *phase.Recorder) {
		if err := a.installTo(in.Device, rec); err != nil {
			rec.Fail("keso.install.device", err)
			return
		}
		// Before the reboot: the netboot server then serves this machine
		// its local disk instead of installing again.
		a.report(ctx, "installed", "installed to "+in.Device+" "+sinceBoot())
		if in.PowerOff {
			req = &power.Request{Action: power.PowerOff, Reason: "installed to " + in.Device}
		} else {
			req = &power.Request{Action: power.Reboot, Reason: "installed to " + in.Device}
		}
	})
	return req
}

func (a *Agent) installTo(device string, rec *phase.Recorder) error {
	cfg, err := a.FS.ReadFile(EffectiveConfig)
	if err != nil {
		return err
	}
	res, err := install.Node(a.Host, a.FS, device, cfg)
	if err != nil {
		return err
	}
	rec.Change("install", device, fmt.Sprintf("%d MiB disk in %s; config saved on %s", res.DiskBytes>>20, res.Took.Round(time.Millisecond), res.State))
	return nil
}
