package agent

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/runcmd"
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
		if err := a.installTo(ctx, in.Device, rec); err != nil {
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

// KesoCLI is the node CLI in the root file system; the silent install runs
// `keso install` from it, so keso-init does not link the image writers.
const KesoCLI = "/usr/bin/keso"

// installTimeout bounds the silent install (a slow USB stick or SD card
// writing ~100 MB, twice, with syncs).
const installTimeout = 30 * time.Minute

func (a *Agent) installTo(ctx context.Context, device string, rec *phase.Recorder) error {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	var out tailBuffer
	argv := []string{KesoCLI, "install", "--device", device, "--config", a.FS.Path(EffectiveConfig), "--yes", "--no-reboot"}
	err := runcmd.Exec{}.Run(ctx, argv, a.env, io.MultiWriter(a.Log, &out))
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", installTimeout)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out.tail())
	}
	rec.Change("install", device, out.tail())
	return nil
}
