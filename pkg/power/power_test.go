package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const mountTable = `20 1 0:20 / / ro,relatime - squashfs /dev/vda2 ro
21 20 0:5 / /dev rw - devtmpfs devtmpfs rw
22 20 0:21 / /proc rw - proc proc rw
23 20 0:22 / /sys rw - sysfs sysfs rw
24 20 0:23 / /run rw - tmpfs tmpfs rw
25 20 8:4 / /keso/state rw - ext4 /dev/vda4 rw
26 20 8:4 /var /var rw - ext4 /dev/vda4 rw
27 20 0:24 / /etc rw - overlay overlay rw
28 23 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
29 26 0:26 / /var/lib/kubelet/pods/x rw - tmpfs tmpfs rw
`

func TestUnmountPlan(t *testing.T) {
	un, ro := UnmountPlan(mountTable)
	if got, want := strings.Join(un, " "), "/var/lib/kubelet/pods/x /etc /var /keso/state /run"; got != want {
		t.Errorf("unmount = %q, want %q", got, want)
	}
	if got, want := strings.Join(ro, " "), "/"; got != want {
		t.Errorf("read-only = %q, want %q", got, want)
	}
}

type fakeSys struct {
	calls []string
	busy  map[string]bool
}

func (f *fakeSys) MountInfo() (string, error) { return mountTable, nil }
func (f *fakeSys) Unmount(t string) error {
	f.calls = append(f.calls, "umount "+t)
	if f.busy[t] {
		return errors.New("busy")
	}
	return nil
}
func (f *fakeSys) RemountReadOnly(t string) error { f.calls = append(f.calls, "ro "+t); return nil }
func (f *fakeSys) Sync()                          { f.calls = append(f.calls, "sync") }
func (f *fakeSys) Reboot() error                  { f.calls = append(f.calls, "reboot"); return nil }
func (f *fakeSys) PowerOff() error                { f.calls = append(f.calls, "poweroff"); return nil }

type slowStopper struct {
	name  string
	delay time.Duration
	log   *[]string
}

func (s slowStopper) Name() string { return s.name }
func (s slowStopper) Stop(ctx context.Context) error {
	select {
	case <-time.After(s.delay):
		*s.log = append(*s.log, "stopped "+s.name)
		return nil
	case <-ctx.Done():
		*s.log = append(*s.log, "gave up "+s.name)
		return ctx.Err()
	}
}

func TestHandleIsBounded(t *testing.T) {
	var order []string
	sys := &fakeSys{busy: map[string]bool{"/keso/state": true}}
	var log bytes.Buffer
	start := time.Now()
	err := Handle(&Request{Action: PowerOff, Reason: "power button"},
		[]Stopper{slowStopper{"k3s", time.Hour, &order}, slowStopper{"sshd", time.Hour, &order}}, sys, 200*time.Millisecond, &log)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Handle took %s with a 200ms bound", took)
	}
	if got, want := fmt.Sprint(order), "[gave up k3s gave up sshd]"; got != want {
		t.Errorf("stoppers = %s, want %s", got, want)
	}
	calls := strings.Join(sys.calls, ",")
	for _, want := range []string{"sync,umount /var/lib/kubelet/pods/x", "ro /,ro /keso/state,sync,poweroff"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls %s lack %s", calls, want)
		}
	}
	if !strings.Contains(log.String(), "keso: poweroff: power button") {
		t.Errorf("log = %s", log.String())
	}
}
