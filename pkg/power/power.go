// Package power is the one place where keso stops the machine. Whoever
// wants a reboot or a power-off returns a *Request as an error (the ACPI
// power button, `keso reboot`, a failed trial boot, an install that ends
// with power_off); the agent hands it to Handle, which stops the services
// (k3s first) within a time bound, syncs, unmounts what it can, remounts
// the rest read-only, and only then reboots or powers off.
//
// Side effects: Ask signals PID 1; Handle acts only through the System it
// is given (host.Linux on a node).
package power

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/keso-os/keso/pkg/mountinfo"
)

// Action is what to do with the machine.
type Action string

const (
	Reboot   Action = "reboot"
	PowerOff Action = "poweroff"
)

// Request asks for the machine to stop. It is an error so that it can be
// returned through the agent's call stack to the one place that acts on it.
type Request struct {
	Action Action
	Reason string
}

func (r *Request) Error() string { return fmt.Sprintf("%s requested: %s", r.Action, r.Reason) }

// Stopper is a service to stop before the machine goes down.
type Stopper interface {
	Name() string
	Stop(ctx context.Context) error
}

// System is the real machine (host.Linux plus a mountinfo reader).
type System interface {
	MountInfo() (string, error)
	Unmount(target string) error
	RemountReadOnly(target string) error
	Sync()
	Reboot() error
	PowerOff() error
}

// DefaultTimeout bounds stopping the services.
const DefaultTimeout = 30 * time.Second

// Handle stops stoppers in order (each gets what is left of timeout),
// syncs, unmounts, and performs req. It returns only if the final system
// call fails.
func Handle(req *Request, stoppers []Stopper, sys System, timeout time.Duration, log io.Writer) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fmt.Fprintf(log, "keso: %s: %s\n", req.Action, req.Reason)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, s := range stoppers {
		start := time.Now()
		if err := s.Stop(ctx); err != nil {
			fmt.Fprintf(log, "keso: %s: stop %s: %v\n", req.Action, s.Name(), err)
		} else {
			fmt.Fprintf(log, "keso: %s: stopped %s in %s\n", req.Action, s.Name(), time.Since(start).Round(time.Millisecond))
		}
	}
	sys.Sync()
	info, err := sys.MountInfo()
	if err != nil {
		fmt.Fprintf(log, "keso: %s: read mounts: %v\n", req.Action, err)
	}
	unmount, readOnly := UnmountPlan(info)
	for _, m := range unmount {
		if err := sys.Unmount(m); err != nil {
			readOnly = append(readOnly, m)
		}
	}
	for _, m := range readOnly {
		if err := sys.RemountReadOnly(m); err != nil {
			fmt.Fprintf(log, "keso: %s: %s stays writable: %v\n", req.Action, m, err)
		}
	}
	sys.Sync()
	switch req.Action {
	case PowerOff:
		return sys.PowerOff()
	default:
		return sys.Reboot()
	}
}

// kernelFS are file systems that hold no data to lose; they stay mounted.
var kernelFS = map[string]bool{"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "cgroup2": true,
	"cgroup": true, "securityfs": true, "debugfs": true, "tracefs": true, "bpf": true, "mqueue": true,
	"pstore": true, "efivarfs": true, "configfs": true, "fusectl": true, "hugetlbfs": true, "binfmt_misc": true,
	"rpc_pipefs": true, "nsfs": true}

// UnmountPlan reads /proc/self/mountinfo text and returns the mount points
// to unmount, last mounted first (so /var/lib/x goes before /var), and the ones
// to remount read-only instead: "/", and file systems holding others that
// stay (such as /keso/state under the bind-mounted /var).
func UnmountPlan(info string) (unmount, readOnly []string) {
	ms, _ := mountinfo.Parse(info)
	seen := map[string]bool{}
	for _, m := range ms {
		if kernelFS[m.FSType] || seen[m.MountPoint] {
			continue
		}
		seen[m.MountPoint] = true
		switch m.MountPoint {
		case "/":
			readOnly = append(readOnly, "/")
		case "/dev", "/proc", "/sys":
		default:
			unmount = append(unmount, m.MountPoint)
		}
	}
	// Later mounts sit on earlier ones: undo them in reverse order.
	slices.Reverse(unmount)
	return unmount, readOnly
}
