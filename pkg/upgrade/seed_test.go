package upgrade

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/delta"
)

// TestDeltaFromTheInactiveSlot: a node that staged 1.0.5 (or ran it
// before) and is then told 1.1.0 builds it from a delta that starts from
// 1.0.5, the image in its inactive slot, applied against a checked copy
// of it; the copy survives a power cut in the apply and goes once the
// slot is written.
func TestDeltaFromTheInactiveSlot(t *testing.T) {
	// What 1.0.5 and 1.1.0 share and 1.0.0 lacks: the delta from the
	// running 1.0.0 must carry it, the one from 1.0.5 need not.
	shared := make([]byte, 300<<10)
	rand.Read(shared)
	extra := map[string]string{"usr/lib/shared.bin": string(shared)}

	tests := []struct {
		name string
		// fromRunning also publishes the (larger) delta from 1.0.0.
		fromRunning bool
		// cut: slot b is half rewritten (its start zeroed) and the copy
		// of 1.0.5 is in the work folder, as after a power cut.
		cut bool
		// badSeed: the work folder holds a copy that is not 1.0.5 and
		// slot b is blank: it is removed and the image fetched whole.
		badSeed   bool
		wantFrom  string // the delta used: "1.0.5", "1.0.0" or "" (the image)
		wantInLog string
	}{
		{name: "staged 1.0.5, only a delta from it published", wantFrom: "1.0.5", wantInLog: "copied from slot b's 1.0.5"},
		{name: "deltas from both, the smaller taken", fromRunning: true, wantFrom: "1.0.5"},
		{name: "power cut in the apply: the copy is used again", cut: true, wantFrom: "1.0.5"},
		{name: "a copy that is not the image", badSeed: true, wantFrom: "", wantInLog: "is not the image the delta starts from: removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			old := makeImage(t, f.dir, "1.0.0")
			runningSlot(t, f, old)
			mid := makeImageWith(t, f.dir, "1.0.5", extra)
			midURL := f.serve(t, mid)
			img := makeImageWith(t, f.dir, "1.1.0", extra)
			url := f.serve(t, img)
			p := publishDelta(t, f, mid, img, "1.0.5")
			if tt.fromRunning {
				publishDelta(t, f, old, img, "1.0.0")
			}
			if _, err := f.upgrader().Run(context.Background(), Request{Image: midURL, Stage: true}, f.node); err != nil {
				t.Fatalf("staging 1.0.5: %v\n%s", err, f.log.String())
			}
			seed := filepath.Join(f.dir, "work", "seed-1.0.5.squashfs")
			switch {
			case tt.cut:
				b, _ := os.ReadFile(mid)
				must(t, os.WriteFile(seed, b, 0o600))
				zeroSlotStart(t, f, "b")
			case tt.badSeed:
				b, _ := os.ReadFile(old)
				must(t, os.WriteFile(seed, b, 0o600))
				zeroSlotStart(t, f, "b")
			}
			f.log.Reset()

			out, err := f.upgrader().Run(context.Background(), Request{Image: url}, f.node)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, f.log.String())
			}
			wantBytes, _ := os.ReadFile(img)
			if tt.wantFrom != "" {
				p = delta.PathsFor(img, tt.wantFrom)
				data, _ := os.ReadFile(p.Data)
				index, _ := os.ReadFile(p.Index)
				if got, want := out.Downloaded, int64(len(data)+len(index)); !out.Delta() || got != want {
					t.Errorf("delta %v, downloaded %d bytes; want the delta from %s's %d", out.Delta(), got, tt.wantFrom, want)
				}
				if got, want := out.DeltaFrom, "slot b's "+tt.wantFrom; got != want {
					t.Errorf("built from a delta and %q, want %q", got, want)
				}
			} else if out.Delta() || out.Downloaded != int64(len(wantBytes)) {
				t.Errorf("delta %v, downloaded %d bytes; want the %d-byte image", out.Delta(), out.Downloaded, len(wantBytes))
			}
			slot, _ := os.ReadFile(f.disk.path("b"))
			if !bytes.Equal(slot[:len(wantBytes)], wantBytes) {
				t.Errorf("slot b does not hold 1.1.0")
			}
			if out.ToVersion != "1.1.0" {
				t.Errorf("upgraded to %q, want 1.1.0", out.ToVersion)
			}
			if ents, _ := os.ReadDir(filepath.Join(f.dir, "work")); len(ents) != 0 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("left in the work folder: %v", names)
			}
			if !strings.Contains(f.log.String(), tt.wantInLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantInLog, f.log.String())
			}
		})
	}
}

// zeroSlotStart zeroes the first MiB of slot, as an apply that a power
// cut stopped leaves it: its image cannot be read.
func zeroSlotStart(t *testing.T, f *fixture, slot string) {
	t.Helper()
	dev, err := f.disk.OpenSlot(bootloader.Slot(slot))
	must(t, err)
	defer dev.Close()
	_, err = dev.WriteAt(make([]byte, 1<<20), 0)
	must(t, err)
}
