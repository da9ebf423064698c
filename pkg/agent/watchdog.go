package agent

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// The watchdog: keso-init arms the machine's watchdog timer at the start
// of the system stage and keeps it quiet for as long as the agent makes
// progress — each phase starting, and the main loop's ticks once the boot
// is done. A phase that hangs for longer than watchdogStall, or a main loop
// that stops, goes unpetted and the machine resets: on a trial boot that is
// a failed try (the bootloader counts it), elsewhere a reboot instead of a
// box that hangs in a store. Kernel panics are handled by panic= on the
// command line; a hardware watchdog also catches a hung kernel, softdog
// (the fallback where no hardware timer is found) only a hung keso-init.
const (
	watchdogTimeout = 60 * time.Second
	watchdogPet     = 10 * time.Second
	watchdogStall   = 10 * time.Minute
)

// watchdogDrivers are the hardware timers tried, in order (modules the
// profiles ship; absent hardware simply does not bind).
var watchdogDrivers = []string{"i6300esb", "iTCO_wdt", "sp5100_tco", "bcm2835_wdt"}

// progress is the agent's heartbeat for the watchdog.
type progress struct {
	mu   sync.Mutex
	last time.Time
}

func (p *progress) mark(now time.Time) {
	p.mu.Lock()
	p.last = now
	p.mu.Unlock()
}

// stalled reports whether the agent made no progress for longer than stall.
func (p *progress) stalled(now time.Time, stall time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.last.IsZero() && now.Sub(p.last) > stall
}

// armWatchdog loads a watchdog driver, opens /dev/watchdog and pets it
// while the agent makes progress. keso.watchdog=0 on the kernel command
// line turns it off.
func (a *Agent) armWatchdog(ctx context.Context, off bool) {
	if off {
		fmt.Fprintln(a.Log, "keso: watchdog: off (keso.watchdog=0)")
		return
	}
	dev := a.FS.Path("/dev/watchdog")
	for _, m := range watchdogDrivers {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		a.mods.Load(m) // absent hardware or module: nothing to do
	}
	if _, err := os.Stat(dev); err != nil {
		if err := a.mods.Load("softdog"); err != nil {
			fmt.Fprintf(a.Log, "keso: watchdog: none (no hardware timer, softdog: %v)\n", err)
			return
		}
	}
	w, err := a.Host.OpenWatchdog(dev, watchdogTimeout)
	if err != nil {
		fmt.Fprintf(a.Log, "keso: watchdog: %v\n", err)
		return
	}
	a.beat.mark(time.Now())
	fmt.Fprintf(a.Log, "keso: watchdog: armed %s (%s, %s): the machine resets if keso-init makes no progress for %s\n",
		dev, w.Identity, w.Timeout, watchdogStall)
	go func() {
		t := time.NewTicker(watchdogPet)
		defer t.Stop()
		warned := false
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if a.beat.stalled(now, watchdogStall) {
					if !warned {
						fmt.Fprintf(a.Log, "keso: watchdog: no progress for %s; letting the watchdog reset the machine\n", watchdogStall)
						warned = true
					}
					continue
				}
				if err := w.Pet(); err != nil {
					fmt.Fprintf(a.Log, "keso: watchdog: %v\n", err)
				}
			}
		}
	}()
}
