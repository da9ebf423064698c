package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/verity"
)

// newPiFixture is a Raspberry Pi card as keso-build makes it: both slots'
// kernels on the boot FAT, boot.env with slot a good and no trial, slot
// a's root written and slot b's empty.
func newPiFixture(t *testing.T) (*fixture, bootloader.UBoot) {
	return newScriptFixture(t, bootloader.UBootEnvFile)
}

// scriptLoaders are the boot loaders whose script keeps a counter file:
// the Pi card's U-Boot and the armv7 ESP's GRUB.
var scriptLoaders = []bootloader.EnvFile{bootloader.UBootEnvFile, bootloader.GrubEnvFile}

// newScriptFixture is a boot partition of a script boot loader with the
// counter file env, as keso-build writes it (slot a good, no trial).
func newScriptFixture(t *testing.T, env bootloader.EnvFile) (*fixture, bootloader.UBoot) {
	t.Helper()
	f := newFixture(t)
	f.esp = host.FS{Root: filepath.Join(f.dir, "boot")}
	for _, s := range []bootloader.Slot{"a", "b"} {
		must(t, f.esp.WriteFileAtomic(bootloader.KernelPath(s), []byte("kernel-1.0.0"), 0o644))
		must(t, f.esp.WriteFileAtomic(bootloader.InitrdPath(s), []byte("initrd-1.0.0"), 0o644))
	}
	ub := bootloader.UBoot{FS: f.esp, Env: env}
	must(t, env.Write(f.esp, bootloader.UBootEnv{Good: "a"}))
	f.node.Options = "" // the command line is the script's (U-Boot) or the image's (GRUB); ReadNode gets no ESP
	return f, ub
}

func (f *fixture) piUpgrader(ub bootloader.UBoot) *Upgrader {
	u := f.upgrader()
	u.ESP, u.Boot = nil, ub
	return u
}

// ubootBoot is one power-on of the board: the boot script's decision
// (UBootEnv.Booting), written back when it took a try, as the script's
// fatwrite does.
func ubootBoot(t *testing.T, ub bootloader.UBoot) bootloader.Slot {
	t.Helper()
	env := readEnv(t, ub)
	slot, next := env.Booting()
	if next != env {
		must(t, ub.EnvFile().Write(ub.FS, next))
	}
	return slot
}

func readEnv(t *testing.T, ub bootloader.UBoot) bootloader.UBootEnv {
	t.Helper()
	env, err := ub.EnvFile().Read(ub.FS)
	must(t, err)
	return env
}

func TestUBootUpgradeOverHTTPThenCommit(t *testing.T) {
	for _, env := range scriptLoaders {
		t.Run(env.Name, func(t *testing.T) {
			f, ub := newScriptFixture(t, env)
			img, url := f.release(t, "1.1.0")
			out, err := f.piUpgrader(ub).Run(context.Background(), Request{Image: url}, f.node)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, f.log.String())
			}
			checkWroteSlotB(t, f, img, out)
			if k, _ := f.esp.ReadFile(bootloader.KernelPath("a")); string(k) != "kernel-1.0.0" {
				t.Errorf("kernel for a = %.20q, want it untouched", k)
			}
			if got, want := readEnv(t, ub), (bootloader.UBootEnv{Good: "a", Try: "b", Left: 3}); got != want {
				t.Errorf("boot.env after Run = %+v, want %+v", got, want)
			}
			if !strings.Contains(f.log.String(), "keso_try=b keso_left=3") {
				t.Errorf("log does not say what was armed:\n%s", f.log.String())
			}
			// GRUB boots the slot with the release's own command line.
			cmd, err := f.esp.ReadFile(bootloader.GrubCmdlinePath("b"))
			switch {
			case env.SlotFiles == nil && err == nil:
				t.Errorf("%s wrote %s; its command line is the script's", env.Name, bootloader.GrubCmdlinePath("b"))
			case env.SlotFiles != nil && string(cmd) != "set keso_options='console=ttyS0 panic=10 release=1.1.0'\n":
				t.Errorf("%s = %q (%v), want the image's command line without keso.slot", bootloader.GrubCmdlinePath("b"), cmd, err)
			}

			// The script boots the trial; the agent sees a trial and commits.
			if s := ubootBoot(t, ub); s != "b" {
				t.Fatalf("booted %s, want b", s)
			}
			bs, err := AssessBoot(ub, f.state, "b", "1.1.0", time.Now())
			must(t, err)
			if !bs.Trial || bs.Committed || bs.TriesLeft != 2 || bs.OtherSlot != "a (keso)" {
				t.Errorf("trial status = %+v, want trial with 2 tries left, other slot a", bs)
			}
			// An upgrade from a slot on trial is refused before anything is written.
			img2 := makeImage(t, f.dir, "1.2.0")
			publish(t, img2, f.priv)
			node := f.node
			node.Slot, node.Version = "b", "1.1.0"
			if _, err := f.piUpgrader(ub).Run(context.Background(), Request{Image: img2}, node); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "on trial") {
				t.Errorf("upgrade on a trial slot: err = %v, want refused (on trial)", err)
			}

			must(t, MarkHealthyBoot(ub, f.state, "b", "1.1.0", time.Now()))
			if got, want := readEnv(t, ub), (bootloader.UBootEnv{Good: "b"}); got != want {
				t.Errorf("boot.env after commit = %+v, want %+v", got, want)
			}
			bs, err = AssessBoot(ub, f.state, "b", "1.1.0", time.Now())
			must(t, err)
			if bs.Trial || !bs.Committed || bs.LastCommit == nil || bs.LastCommit.Version != "1.1.0" {
				t.Errorf("after commit = %+v", bs)
			}
			for i := 0; i < 4; i++ {
				if s := ubootBoot(t, ub); s != "b" {
					t.Fatalf("boot %d after commit = %s, want b", i, s)
				}
			}

			// keso rollback: slot a (which booted 1.0.0 before) boots next, for good.
			other, err := RollbackBoot(ub, f.state, "b", "1.1.0", "operator", time.Now())
			must(t, err)
			if other != "a" {
				t.Errorf("rollback to %s, want a", other)
			}
			for i := 0; i < 3; i++ {
				if s := ubootBoot(t, ub); s != "a" {
					t.Fatalf("boot %d after rollback = %s, want a", i, s)
				}
			}
			bs, err = AssessBoot(ub, f.state, "a", "1.0.0", time.Now())
			must(t, err)
			if !bs.Committed || bs.Trial || bs.LastRollback == nil || bs.LastRollback.Reason != "operator" || bs.OtherSlot != "b (keso 1.1.0)" {
				t.Errorf("after rollback = %+v (rollback %+v)", bs, bs.LastRollback)
			}
		})
	}
}

func TestUBootFailedTrialRollsBackWithReason(t *testing.T) {
	for _, env := range scriptLoaders {
		t.Run(env.Name, func(t *testing.T) {
			f, ub := newScriptFixture(t, env)
			img := makeImage(t, f.dir, "1.1.0")
			publish(t, img, f.priv)
			if _, err := f.piUpgrader(ub).Run(context.Background(), Request{Image: img}, f.node); err != nil {
				t.Fatalf("Run: %v\n%s", err, f.log.String())
			}
			for try := 1; try <= 3; try++ {
				if s := ubootBoot(t, ub); s != "b" {
					t.Fatalf("try %d booted %s, want b", try, s)
				}
				bs, err := AssessBoot(ub, f.state, "b", "1.1.0", time.Now())
				must(t, err)
				if !bs.Trial || bs.TriesLeft != 3-try {
					t.Errorf("try %d: status = %+v, want trial with %d tries left", try, bs, 3-try)
				}
				must(t, RecordFailure(f.state, fmt.Sprintf("k3s exited (try %d)", try)))
			}
			if s := ubootBoot(t, ub); s != "a" {
				t.Fatalf("after 3 failed tries booted %s, want a", s)
			}
			bs, err := AssessBoot(ub, f.state, "a", "1.0.0", time.Now())
			must(t, err)
			if bs.LastRollback == nil || bs.LastRollback.FromVersion != "1.1.0" || !strings.Contains(bs.LastRollback.Reason, "k3s exited (try 3)") {
				t.Errorf("rollback = %+v", bs.LastRollback)
			}
			if !bs.Committed || bs.Trial {
				t.Errorf("status on a = %+v, want committed", bs)
			}
			st, err := LoadState(f.state)
			must(t, err)
			if st.Pending != nil {
				t.Errorf("pending upgrade after the rollback = %+v, want none", st.Pending)
			}
			// The failed slot cannot be preferred; a new upgrade may replace it.
			if _, err := RollbackBoot(ub, f.state, "a", "1.0.0", "operator", time.Now()); err == nil || !strings.Contains(err.Error(), "on trial") {
				t.Errorf("rollback to the failed slot: err = %v, want refused", err)
			}
			img2 := makeImage(t, f.dir, "1.2.0")
			publish(t, img2, f.priv)
			if _, err := f.piUpgrader(ub).Run(context.Background(), Request{Image: img2}, f.node); err != nil {
				t.Fatalf("second Run: %v\n%s", err, f.log.String())
			}
			if got, want := readEnv(t, ub), (bootloader.UBootEnv{Good: "a", Try: "b", Left: 3}); got != want {
				t.Errorf("boot.env after the second Run = %+v, want %+v", got, want)
			}
		})
	}
}

// An upgrade cut after its slot was written but before boot.env armed the
// trial is reported as interrupted, not as a rollback.
func TestUBootInterruptedUpgrade(t *testing.T) {
	f, ub := newPiFixture(t)
	must(t, SaveState(f.state, State{Pending: &Pending{FromVersion: "1.0.0", ToVersion: "1.1.0", FromSlot: "a", ToSlot: "b", Tries: 3}}))
	must(t, ub.Retire("b"))
	if s := ubootBoot(t, ub); s != "a" {
		t.Fatalf("booted %s, want a", s)
	}
	bs, err := AssessBoot(ub, f.state, "a", "1.0.0", time.Now())
	must(t, err)
	if bs.Interrupted == "" || bs.LastRollback != nil || !bs.Committed {
		t.Errorf("status = %+v, want interrupted, no rollback", bs)
	}
}

// A fresh card's slot b has a kernel but an empty root: keso rollback
// refuses to switch to it.
func TestUBootRollbackRefusesEmptySlot(t *testing.T) {
	f, ub := newPiFixture(t)
	_, err := RollbackBoot(ub, f.state, "a", "1.0.0", "operator", time.Now())
	if !errors.Is(err, bootloader.ErrNoEntry) {
		t.Errorf("rollback on a fresh card: err = %v, want ErrNoEntry", err)
	}
	if got, want := readEnv(t, ub), (bootloader.UBootEnv{Good: "a"}); got != want {
		t.Errorf("boot.env = %+v, want unchanged %+v", got, want)
	}
}

// boot.env's counter is one digit (the script's setexpr writes hex): more
// tries are refused before anything is written.
func TestUBootArmRefusesTooManyTries(t *testing.T) {
	f, ub := newPiFixture(t)
	if _, err := ub.Arm(bootloader.ArmSpec{Slot: "b", Kernel: []byte("k"), Initrd: []byte("i"), Tries: 10}); err == nil || !strings.Contains(err.Error(), "1 to 9") {
		t.Errorf("Arm with 10 tries: err = %v, want refused", err)
	}
	if got, want := readEnv(t, ub), (bootloader.UBootEnv{Good: "a"}); got != want {
		t.Errorf("boot.env = %+v, want unchanged %+v", got, want)
	}
	if k, _ := f.esp.ReadFile(bootloader.KernelPath("b")); string(k) != "kernel-1.0.0" {
		t.Errorf("kernel b = %q, want unchanged", k)
	}
}

// cutFS fails every write to the boot partition after the first n, as a
// power cut would leave it.
type cutFS struct {
	host.FS
	n int
}

func (c *cutFS) spend() error {
	if c.n == 0 {
		return errors.New("power cut")
	}
	c.n--
	return nil
}

func (c *cutFS) WriteFileAtomic(p string, data []byte, mode os.FileMode) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.WriteFileAtomic(p, data, mode)
}

func (c *cutFS) Remove(p string) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.Remove(p)
}

func (c *cutFS) Rename(o, n string) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.Rename(o, n)
}

// An upgrade cut after any write to the boot partition leaves a card that
// boots a complete version: slot a as before, or slot b only once its new
// kernel and initrd are all there.
func TestUBootUpgradePowerCut(t *testing.T) {
	for _, env := range scriptLoaders {
		t.Run(env.Name, func(t *testing.T) { testScriptUpgradePowerCut(t, env) })
	}
}

func testScriptUpgradePowerCut(t *testing.T, env bootloader.EnvFile) {
	dir := t.TempDir()
	f0, _ := newScriptFixture(t, env)
	img := makeImage(t, dir, "1.1.0")
	publish(t, img, f0.priv)
	for n := 0; ; n++ {
		f, ub := newScriptFixture(t, env)
		f.priv, f.pub = f0.priv, f0.pub
		f.node.TrustedKeys = f0.node.TrustedKeys
		cut := &cutFS{FS: f.esp, n: n}
		_, err := f.piUpgrader(bootloader.UBoot{FS: cut, Env: env}).Run(context.Background(), Request{Image: img}, f.node)
		slot := ubootBoot(t, ub)
		k, _ := f.esp.ReadFile(bootloader.KernelPath(slot))
		i, _ := f.esp.ReadFile(bootloader.InitrdPath(slot))
		switch {
		case slot == "a" && (string(k) != "kernel-1.0.0" || string(i) != "initrd-1.0.0"):
			t.Errorf("cut after %d writes: slot a's kernel/initrd changed", n)
		case slot == "b" && (!bytes.HasPrefix(k, []byte("kernel-1.1.0")) || !isSlotInitrd(i, "initrd-1.1.0", "b")):
			t.Errorf("cut after %d writes: boots slot b with kernel %.12q initrd %q, want the complete 1.1.0", n, k, i)
		}
		bs, aerr := AssessBoot(ub, f.state, slot, map[bootloader.Slot]string{"a": "1.0.0", "b": "1.1.0"}[slot], time.Now())
		if aerr != nil {
			t.Errorf("cut after %d writes: assess: %v", n, aerr)
		}
		if err == nil {
			if slot != "b" || !bs.Trial {
				t.Errorf("uncut upgrade boots %s (%+v), want slot b on trial", slot, bs)
			}
			if n < 4 {
				t.Errorf("the upgrade made only %d writes to the boot partition, want title, kernel, initrd and the counter file", n)
			}
			break
		}
		if slot != "a" {
			t.Errorf("cut after %d writes (%v): boots %s, want a", n, err, slot)
		}
		if bs.LastRollback != nil {
			t.Errorf("cut after %d writes: reported as a rollback: %+v", n, bs.LastRollback)
		}
		if n > 20 {
			t.Fatalf("the upgrade never completed: %v", err)
		}
	}
}

// isSlotInitrd says whether initrd is the image's initrd followed by the
// slot's dm-verity record archive, and nothing short of it.
func isSlotInitrd(initrd []byte, image, slot string) bool {
	rest, ok := bytes.CutPrefix(initrd, []byte(image))
	return ok && bytes.Contains(rest, []byte(verity.RecordPath+"\x00")) &&
		bytes.Contains(rest, []byte(`"slot": "`+slot+`"`)) && bytes.Contains(rest, []byte("TRAILER!!!\x00"))
}
