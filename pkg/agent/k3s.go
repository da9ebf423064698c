package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/k3s"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/status"
)

// startK3s prepares the node and starts the supervisor. It returns nil
// when k3s cannot start at all (no binary), which the status says.
func (a *Agent) startK3s(ctx context.Context) *k3s.Supervisor {
	h := k3s.Plan(a.cfg)
	ok := true
	a.phase("k3s", func(rec *phase.Recorder) {
		a.k3sAssets(h.Role, rec)
		// Prepare records its own failures, the missing binary included.
		if err := k3s.Prepare(a.FS, a.Host, a.mods, h, rec); err != nil {
			ok = false
		}
	})
	a.update(func(s *status.Status) { s.K3s.Role = h.Role })
	if !ok {
		return nil
	}
	env := append(append([]string(nil), h.Env...), "KESO_BOOT_MODE="+string(a.Boot.Mode))
	sup := &k3s.Supervisor{Argv: h.Argv, Env: env, Starter: k3s.ExecStarter{Host: a.Host, Out: a.Log}, Log: a.Log}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sup.Run(kctx)
	}()
	if since, ok := sincePID1(); ok {
		fmt.Fprintf(a.Log, "keso: k3s handed off %s after PID 1 started\n", since.Round(time.Millisecond))
	}
	// k3s stops first at shutdown.
	a.started = append([]power.Stopper{stopper{"k3s", cancel, done}}, a.started...)
	return sup
}

// refresh copies k3s's health into the status.
func (a *Agent) refresh(sup *k3s.Supervisor) {
	if sup == nil {
		return
	}
	h := sup.Health()
	a.stMu.Lock()
	same := a.st.K3s.Running == h.Running && a.st.K3s.Restarts == h.Restarts && a.st.K3s.LastExit == h.LastExit
	a.stMu.Unlock()
	if same {
		return
	}
	a.update(func(s *status.Status) {
		s.K3s.Running, s.K3s.Restarts, s.K3s.LastExit = h.Running, h.Restarts, h.LastExit
	})
}

// Where the root file system carries what k3s should pick up by itself.
const (
	shippedManifests = "/usr/share/keso/manifests"
	shippedImages    = "/usr/share/keso/images"
	k3sManifests     = "/var/lib/rancher/k3s/server/manifests"
	k3sImages        = "/var/lib/rancher/k3s/agent/images"
)

// k3sAssets puts the operator's manifests into k3s's auto-deploy folder
// (servers only) and links the air-gap image tarballs into k3s's image
// folder, so that no registry is needed at a store.
func (a *Agent) k3sAssets(role string, rec *phase.Recorder) {
	if role == "server" {
		des, _ := a.FS.ReadDir(shippedManifests)
		for _, de := range des {
			src, dst := shippedManifests+"/"+de.Name(), k3sManifests+"/"+de.Name()
			data, err := a.FS.ReadFile(src)
			if err != nil {
				rec.Fail("", err)
				continue
			}
			if cur, err := a.FS.ReadFile(dst); err == nil && bytes.Equal(cur, data) {
				continue
			}
			if err := a.FS.WriteFileAtomic(dst, data, 0o600); err != nil {
				rec.Fail("", err)
				continue
			}
			rec.Change("write", dst, "")
		}
	}
	des, _ := a.FS.ReadDir(shippedImages)
	for _, de := range des {
		dst := k3sImages + "/" + de.Name()
		if _, err := a.FS.Stat(dst); err == nil {
			continue
		}
		if err := a.FS.MkdirAll(k3sImages, 0o755); err != nil {
			rec.Fail("", err)
			return
		}
		if err := a.FS.Symlink(shippedImages+"/"+de.Name(), dst); err != nil {
			rec.Fail("", err)
			continue
		}
		rec.Change("link", dst, "air-gap image")
	}
}

// sincePID1 is how long ago PID 1 (keso-init, first as the initrd's /init)
// was started: /proc/uptime minus the start time in /proc/1/stat, which an
// exec (switch_root → /sbin/init) does not reset.
func sincePID1() (time.Duration, bool) {
	up, err1 := os.ReadFile("/proc/uptime")
	st, err2 := os.ReadFile("/proc/1/stat")
	if err1 != nil || err2 != nil {
		return 0, false
	}
	var upSec float64
	if _, err := fmt.Sscan(string(up), &upSec); err != nil {
		return 0, false
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseFloat(f[19], 64) // field 22, starttime, in clock ticks (100 Hz)
	if err != nil {
		return 0, false
	}
	return time.Duration((upSec - ticks/100) * float64(time.Second)), true
}

// rssKiB is keso-init's resident memory from /proc/self/status.
func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
