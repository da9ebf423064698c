package upgrade

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
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

// TestUpgradeOfStagedImageSwitches: the night's plain `keso upgrade
// --image URL --sha256 X` (what the operator's upgrade Job runs) arms
// what --stage wrote without fetching it again; for another image, or a
// slot that no longer holds the staged one, it fetches as if nothing had
// been staged. The download's progress is recorded for the node's report.
func TestUpgradeOfStagedImageSwitches(t *testing.T) {
	f := newFixture(t)
	img := makeImage(t, f.dir, "1.1.0")
	publish(t, img, f.priv)
	var mu sync.Mutex
	fetched := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched[path.Base(r.URL.Path)]++
		mu.Unlock()
		http.FileServer(http.Dir(f.dir)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/" + filepath.Base(img)
	imageFetches := func() int {
		mu.Lock()
		defer mu.Unlock()
		return fetched[filepath.Base(img)]
	}
	sum := sumHex(t, img)
	fi, err := os.Stat(img)
	must(t, err)
	size := fi.Size()

	if _, err := f.upgrader().Run(context.Background(), Request{Image: url, SHA256: sum, Stage: true}, f.node); err != nil {
		t.Fatalf("Run --stage: %v\n%s", err, f.log.String())
	}
	p, err := LoadProgress(f.state)
	must(t, err)
	if got, want := p, (Progress{SHA256: sum, Fetched: size, Needed: size, At: p.At}); got != want {
		t.Errorf("progress after --stage = %+v, want %+v", got, want)
	}
	staged := imageFetches()

	// Another image than the staged one: fetched (and here refused, the
	// server's image not being it), the staged one not armed.
	_, err = f.upgrader().Run(context.Background(), Request{Image: url, SHA256: strings.Repeat("0", 64)}, f.node)
	if err == nil {
		t.Fatalf("Run with another sha256 than the image's: nil error, want the digest refused")
	}
	if imageFetches() == staged {
		t.Errorf("an upgrade to another sha256 than the staged one fetched nothing")
	}
	if e, err := bootloader.Boot(f.esp); err != nil || e.Slot != "a" {
		t.Errorf("after an upgrade to another image was refused the firmware boots %v (%v), want a", e.Slot, err)
	}

	// The plain upgrade to the staged image switches without a fetch.
	before := imageFetches()
	out, err := f.upgrader().Run(context.Background(), Request{Image: url, SHA256: sum, Tries: 2}, f.node)
	if err != nil {
		t.Fatalf("Run of the staged image: %v\n%s", err, f.log.String())
	}
	if got := imageFetches() - before; got != 0 || !out.Switched || out.Downloaded != 0 {
		t.Errorf("Run of the staged image: %d fetches, outcome %+v; want none, switched", got, out)
	}
	if e, err := bootloader.Boot(f.esp); err != nil || e.Slot != "b" {
		t.Errorf("after the switch the firmware boots %v (%v), want the trial of b", e.Slot, err)
	}
	// Armed: the download is used up, the node reports none.
	if p, err := LoadProgress(f.state); err != nil || p != (Progress{}) {
		t.Errorf("progress after the switch = %+v (%v), want none", p, err)
	}
}

// TestUpgradeOfChangedStagedSlotFetches: a staged slot whose bytes changed
// is not armed; the upgrade fetches and writes the image instead.
func TestUpgradeOfChangedStagedSlotFetches(t *testing.T) {
	f := newFixture(t)
	img, url := f.release(t, "1.1.0")
	if _, err := f.upgrader().Run(context.Background(), Request{Image: url, Stage: true}, f.node); err != nil {
		t.Fatalf("Run --stage: %v\n%s", err, f.log.String())
	}
	flip(t, f.disk.path("b"), 100)
	out, err := f.upgrader().Run(context.Background(), Request{Image: url}, f.node)
	if err != nil {
		t.Fatalf("Run after the slot changed: %v\n%s", err, f.log.String())
	}
	if out.Switched || out.Downloaded == 0 {
		t.Errorf("outcome %+v, want the image fetched again, not switched", out)
	}
	checkWroteSlotB(t, f, img, out)
	if !strings.Contains(f.log.String(), "no longer holds the staged 1.1.0") {
		t.Errorf("the log does not say why the staged slot was not used:\n%s", f.log.String())
	}
}
