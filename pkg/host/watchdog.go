package host

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Watchdog is an open watchdog timer device (/dev/watchdog). Once it is
// open the machine resets unless Pet is called within Timeout; it is never
// closed on purpose (a clean close would disarm most drivers).
type Watchdog struct {
	f        *os.File
	Identity string        // the driver's name for itself ("Software Watchdog", "i6300ESB timer")
	Timeout  time.Duration // what the driver accepted
}

// OpenWatchdog opens path and asks for timeout (drivers round it).
func (Linux) OpenWatchdog(path string, timeout time.Duration) (*Watchdog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open watchdog %s: %w", path, err)
	}
	w := &Watchdog{f: f, Timeout: timeout}
	fd := int(f.Fd())
	if info, err := unix.IoctlGetWatchdogInfo(fd); err == nil {
		w.Identity = strings.TrimRight(string(info.Identity[:]), "\x00")
	}
	secs := int(timeout / time.Second)
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs); err == nil {
		if got, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT); err == nil {
			w.Timeout = time.Duration(got) * time.Second
		}
	}
	return w, w.Pet()
}

// Pet restarts the countdown.
func (w *Watchdog) Pet() error {
	if err := unix.IoctlWatchdogKeepalive(int(w.f.Fd())); err != nil {
		return fmt.Errorf("pet watchdog %s: %w", w.f.Name(), err)
	}
	return nil
}
