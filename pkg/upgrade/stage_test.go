package upgrade

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
)

// TestStageThenSwitch: --stage writes and checks slot b but arms nothing
// (the firmware keeps booting a); Switch arms it later, after checking
// the slot still holds what was staged.
func TestStageThenSwitch(t *testing.T) {
	f := newFixture(t)
	img, url := f.release(t, "1.1.0")

	if _, err := f.upgrader().Switch(f.node, 0); err == nil || !strings.Contains(err.Error(), "nothing is staged") {
		t.Errorf("Switch before any stage: %v, want refused (nothing is staged)", err)
	}
	out, err := f.upgrader().Run(context.Background(), Request{Image: url, Stage: true}, f.node)
	if err != nil {
		t.Fatalf("Run --stage: %v\n%s", err, f.log.String())
	}
	if !out.Staged || out.ToVersion != "1.1.0" || out.Slot != "b" {
		t.Errorf("stage outcome = %+v, want 1.1.0 staged on b", out)
	}
	if e, err := bootloader.Boot(f.esp); err != nil || e.Slot != "a" {
		t.Errorf("after --stage the firmware boots %v (%v), want a: nothing armed", e.Slot, err)
	}
	if _, err := f.esp.ReadFile(bootloader.KernelPath("b")); err == nil {
		t.Errorf("--stage put slot b's kernel on the ESP")
	}
	st, err := LoadState(f.state)
	must(t, err)
	if st.Pending != nil || st.Staged == nil || st.Staged.ToVersion != "1.1.0" || st.Staged.SHA256 != sumHex(t, img) {
		t.Fatalf("state after --stage: pending %+v, staged %+v; want staged 1.1.0 with the image's sha256", st.Pending, st.Staged)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "work", filepath.Base(img))); err == nil {
		t.Errorf("the download was kept after staging; the slot holds it")
	}

	// Another version running (the node was upgraded otherwise since):
	// refused, nothing armed.
	other := f.node
	other.Version = "1.0.1"
	if _, err := f.upgrader().Switch(other, 0); err == nil || !strings.Contains(err.Error(), "stage it again") {
		t.Errorf("Switch on another version: %v, want refused", err)
	}

	out, err = f.upgrader().Switch(f.node, 2)
	if err != nil {
		t.Fatalf("Switch: %v\n%s", err, f.log.String())
	}
	if out.ToVersion != "1.1.0" || out.Slot != "b" {
		t.Errorf("switch outcome = %+v", out)
	}
	e, err := bootloader.Boot(f.esp)
	must(t, err)
	if e.Slot != "b" {
		t.Fatalf("after Switch the firmware boots %s, want the trial of b", e.Slot)
	}
	if k, _ := f.esp.ReadFile(bootloader.KernelPath("b")); !strings.HasPrefix(string(k), "kernel-1.1.0") {
		t.Errorf("slot b's kernel on the ESP = %.20q, want the staged release's", k)
	}
	st, err = LoadState(f.state)
	must(t, err)
	if st.Staged != nil || st.Pending == nil || st.Pending.ToVersion != "1.1.0" || st.Pending.Tries != 2 {
		t.Errorf("state after Switch: staged %+v, pending %+v; want a pending 1.1.0 trial of 2 tries", st.Staged, st.Pending)
	}
}

// TestSwitchRefusesAChangedSlot: a slot whose bytes changed after staging
// (a failing disk, a hand-made dd) is never armed.
func TestSwitchRefusesAChangedSlot(t *testing.T) {
	f := newFixture(t)
	img := makeImage(t, f.dir, "1.1.0")
	publish(t, img, f.priv)
	if _, err := f.upgrader().Run(context.Background(), Request{Image: img, Stage: true}, f.node); err != nil {
		t.Fatalf("Run --stage: %v\n%s", err, f.log.String())
	}
	flip(t, f.disk.path("b"), 100)
	if _, err := f.upgrader().Switch(f.node, 0); err == nil || !strings.Contains(err.Error(), "no longer holds the staged 1.1.0") {
		t.Errorf("Switch of a changed slot: %v, want refused", err)
	}
	if e, _ := bootloader.Boot(f.esp); e.Slot != "a" {
		t.Errorf("the firmware boots %s after a refused switch, want a", e.Slot)
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("a local image was removed after staging: %v", err)
	}
}
