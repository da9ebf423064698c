package e2e

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/upgrade"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// TestUpgradePowerCut cuts the power (SIGKILL to QEMU: no shutdown, no
// flush of the guest's caches) at 20 points of an upgrade, spread over the
// download, the slot write, the ESP update and the first trial boot, and
// boots the node again after each: every run must end in a complete v1 or
// v2 (booted to the k3s handoff, os-release and status agreeing,
// committed). Two nodes run the cut points as chains, one cut after the
// other on the same disk, as a box in a store would live through them;
// an upgrade after a commit goes back to the other version
// (--allow-downgrade), so every cut finds an upgrade to interrupt.
func TestUpgradePowerCut(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	v1, v2 := upgradeReleases(t, "amd64")

	var mu sync.Mutex
	var rows []cutRow
	add := func(r cutRow) {
		mu.Lock()
		rows = append(rows, r)
		mu.Unlock()
	}
	chains := []struct {
		name string
		cuts []cutPoint
	}{
		{"download-and-slot-write", []cutPoint{
			downloadCut(0.10), downloadCut(0.30), downloadCut(0.50), downloadCut(0.70), downloadCut(0.95),
			writeCut(10), writeCut(30), writeCut(50), writeCut(70), writeCut(90),
		}},
		{"esp-and-trial-boot", []cutPoint{
			espCut(0), espCut(300 * time.Millisecond), espCut(800 * time.Millisecond), espCut(1500 * time.Millisecond), espCut(3 * time.Second),
			trialCut("firmware (2 s after power-on)", nil, 2*time.Second),
			trialCut("kernel start", slotRE, 0),
			trialCut("initrd stage", regexp.MustCompile(`keso-init \S+: initrd stage`), 0),
			trialCut("k3s handoff", standinRE, 0),
			trialCut("health gate (4 s in)", regexp.MustCompile(`trial boot of slot`), 4*time.Second),
		}},
	}
	t.Run("chains", func(t *testing.T) {
		for i, ch := range chains {
			t.Run(ch.name, func(t *testing.T) {
				t.Parallel()
				// Each chain has its own server: a download cut is a hook
				// on the server, which another chain must not clear.
				srv := serveReleases(t)
				urls := map[string]string{"1.0.0": srv.publish("v1", upgradeImage(t, v1)), "2.0.0": srv.publish("v2", upgradeImage(t, v2))}
				c := &cutChain{t: t, n: newNode(t, fmt.Sprintf("cut%d", i), v1), srv: srv, urls: urls}
				c.up("first")
				for j, cp := range ch.cuts {
					r := c.cut(cp)
					r.Order = i*100 + j
					add(r)
				}
				c.stop()
			})
		}
	})

	sort.Slice(rows, func(i, j int) bool { return rows[i].Order < rows[j].Order })
	var b strings.Builder
	fmt.Fprintf(&b, "power cuts: %d\n| # | phase | cut point | upgrade | after the cut | boots |\n|---|---|---|---|---|---|\n", len(rows))
	for i, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %d |\n", i+1, r.Phase, r.Point, r.Upgrade, r.Outcome, r.Boots)
	}
	t.Log("\n" + b.String())
	if len(rows) < 20 && !t.Failed() {
		t.Errorf("only %d cut points ran, want at least 20", len(rows))
	}
}

// cutRow is one line of the table.
type cutRow struct {
	Order                          int
	Phase, Point, Upgrade, Outcome string
	Boots                          int
}

// cutPoint says when to cut. During `keso upgrade`: onBytes sees the image
// going out of the HTTP server, onLine each line keso upgrade prints (a
// return >= 0 cuts after that delay). During the trial boot: boot is set.
type cutPoint struct {
	phase, point string
	onBytes      func(pos, size int64) bool
	onLine       func(line string) time.Duration
	// trial boot: cut when the console matches re (nil: at once), after delay.
	trial bool
	re    *regexp.Regexp
	delay time.Duration
	// want is the version the node must come back with: "from", "to" or
	// "" (either, as long as it is complete).
	want string
}

func downloadCut(frac float64) cutPoint {
	return cutPoint{phase: "download", point: fmt.Sprintf("%.0f%% of the image sent", frac*100), want: "from",
		onBytes: func(pos, size int64) bool { return pos >= int64(frac*float64(size)) }}
}

func writeCut(pct int) cutPoint {
	re := regexp.MustCompile(fmt.Sprintf(`writing slot [ab]: %d%%`, pct))
	return cutPoint{phase: "slot write", point: fmt.Sprintf("%d%% of the slot written", pct), want: "from",
		onLine: func(l string) time.Duration {
			if re.MatchString(l) {
				return 0
			}
			return -1
		}}
}

func espCut(d time.Duration) cutPoint {
	return cutPoint{phase: "ESP update", point: fmt.Sprintf("%s after the kernel/initrd copy began", d),
		onLine: func(l string) time.Duration {
			if strings.Contains(l, "kernel and initrd on the ESP") {
				return d
			}
			return -1
		}}
}

func trialCut(point string, re *regexp.Regexp, d time.Duration) cutPoint {
	return cutPoint{phase: "first trial boot", point: point, trial: true, re: re, delay: d, want: "to"}
}

// cutChain is one node living through its cut points.
type cutChain struct {
	t    testing.TB
	n    *testNode
	srv  *releaseServer
	urls map[string]string
	vm   *qemu.VM
	c    *ssh.Client
	st   status.Status
}

func (ch *cutChain) stop() {
	if ch.c != nil {
		ch.c.Close()
		ch.c = nil
	}
	if ch.vm != nil {
		ch.vm.Stop()
	}
}

// up boots the node until it runs a complete, committed version: a boot
// that ends on its own (a trial giving up) is followed by the next; a trial
// that goes on is waited for until it commits. It returns the boots used.
func (ch *cutChain) up(label string) int {
	t := ch.t
	t.Helper()
	ch.stop()
	for boots := 1; boots <= 5; boots++ {
		vm := ch.n.start(label)
		ch.vm = vm
		if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
			select {
			case <-vm.Exited():
				vm.Stop()
				continue // rebooted by itself (a trial gave up): boot again
			default:
				t.Fatalf("after %s: the node did not come up: %v", label, err)
			}
		}
		if _, _, err := vm.Expect(standinRE, time.Minute); err != nil {
			t.Fatalf("after %s: no k3s handoff: %v", label, err)
		}
		ch.c = ch.n.ssh()
		ch.st = ch.n.status(ch.c)
		if u := ch.st.Upgrade; u != nil && u.Trial {
			if _, _, err := vm.Expect(regexp.MustCompile(`is healthy: committed`), 2*time.Minute); err != nil {
				select {
				case <-vm.Exited():
					ch.c.Close()
					vm.Stop()
					continue
				default:
					t.Fatalf("after %s: trial neither committed nor gave up: %v", label, err)
				}
			}
			ch.st = ch.n.status(ch.c)
		}
		if u := ch.st.Upgrade; u == nil || !u.Committed {
			t.Fatalf("after %s: status %+v / %+v, want a committed slot", label, ch.st, ch.st.Upgrade)
		}
		if v := osRelease(t, ch.c); v != ch.st.Version || (v != "1.0.0" && v != "2.0.0") {
			t.Fatalf("after %s: os-release says %q, status %q: not a complete v1 or v2", label, v, ch.st.Version)
		}
		return boots
	}
	t.Fatalf("after %s: five boots and no complete version", label)
	return 0
}

// cut runs one cut point and brings the node back.
func (ch *cutChain) cut(cp cutPoint) cutRow {
	t := ch.t
	from := ch.st.Version
	to := "2.0.0"
	if from == "2.0.0" {
		to = "1.0.0"
	}
	row := cutRow{Phase: cp.phase, Point: cp.point, Upgrade: fmt.Sprintf("%s → %s", from, to)}
	cmd := "keso upgrade --image " + ch.urls[to]
	if upgrade.CompareVersions(to, from) < 0 {
		cmd += " --allow-downgrade"
	}
	vm := ch.vm
	var once sync.Once
	kill := func() { once.Do(func() { go vm.Kill() }) }

	if cp.trial {
		out, code := guestRun(ch.c, cmd+" --reboot")
		if code != 0 && code != -1 {
			t.Fatalf("%s: keso upgrade: exit %d\n%s", cp.point, code, out)
		}
		select {
		case <-vm.Exited():
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: no reboot after keso upgrade --reboot", cp.point)
		}
		ch.stop()
		vm = ch.n.start("trial")
		ch.vm = vm
		if cp.re != nil {
			if _, _, err := vm.Expect(cp.re, bootTimeout); err != nil {
				t.Fatalf("%s: %v", cp.point, err)
			}
		}
		time.Sleep(cp.delay)
		vm.Kill()
	} else {
		if cp.onBytes != nil {
			ch.srv.setHook(func(path string, pos, size int64) bool {
				if strings.HasSuffix(path, ".squashfs") && cp.onBytes(pos, size) {
					kill()
					return true
				}
				return false
			})
		}
		lines := ch.stream(cmd)
		for l := range lines {
			if strings.Contains(l, "resumed=true") {
				row.Upgrade += " (download resumed)"
			}
			if cp.onLine != nil {
				if d := cp.onLine(l); d >= 0 {
					time.Sleep(d)
					kill()
				}
			}
		}
		ch.srv.setHook(nil)
		select {
		case <-vm.Exited():
		case <-time.After(5 * time.Second):
			// keso upgrade got through before the cut point: cut now, after
			// the arm, before any reboot (a cut point too).
			row.Point += " (upgrade done first: cut after the arm)"
			vm.Kill()
		}
	}
	boots := ch.up("cut")
	row.Boots = boots
	u := ch.st.Upgrade
	row.Outcome = fmt.Sprintf("%s on slot %s, committed", ch.st.Version, ch.st.Slot)
	switch {
	case u.LastRollback != nil && u.LastRollback.At.After(time.Now().Add(-5*time.Minute)):
		row.Outcome += "; rollback: " + u.LastRollback.Reason
	case u.Interrupted != "":
		row.Outcome += "; noted as interrupted"
	}
	want := map[string]string{"from": from, "to": to}[cp.want]
	if want != "" && ch.st.Version != want {
		t.Errorf("%s / %s: came back with %s, want %s", cp.phase, cp.point, ch.st.Version, want)
		row.Outcome += " (UNEXPECTED: want " + want + ")"
	}
	t.Logf("cut: %s / %s: %s → %s (%d boots)", cp.phase, cp.point, row.Upgrade, row.Outcome, boots)
	return row
}

// stream runs cmd in the guest and sends its output line by line; the
// channel closes when the command ends or the session breaks.
func (ch *cutChain) stream(cmd string) <-chan string {
	out := make(chan string, 64)
	s, err := ch.c.NewSession()
	if err != nil {
		ch.t.Fatalf("ssh session: %v", err)
	}
	pr, pw := io.Pipe()
	s.Stdout, s.Stderr = pw, pw
	if err := s.Start(cmd); err != nil {
		ch.t.Fatalf("start %s: %v", cmd, err)
	}
	go func() {
		s.Wait()
		pw.Close()
		s.Close()
	}()
	go func() {
		defer close(out)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	return out
}
