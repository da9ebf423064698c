package upgrade

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/sign"
)

// publishDelta writes the delta from old to img beside img, as keso-build
// delta does, and returns its paths.
func publishDelta(t *testing.T, f *fixture, old, img, fromVersion string) delta.Paths {
	t.Helper()
	var ob []byte
	if old != "" {
		var err error
		ob, err = os.ReadFile(old)
		must(t, err)
	}
	nb, err := os.ReadFile(img)
	must(t, err)
	var data bytes.Buffer
	ix, err := delta.Make(ob, nb, &data, delta.Options{})
	must(t, err)
	ix.FromVersion, ix.Version = fromVersion, "1.1.0"
	index, sig, err := ix.Sign(f.priv)
	must(t, err)
	p := delta.PathsFor(img, fromVersion)
	must(t, os.MkdirAll(filepath.Dir(p.Index), 0o755))
	must(t, os.WriteFile(p.Data, data.Bytes(), 0o644))
	must(t, os.WriteFile(p.Index, index, 0o644))
	must(t, os.WriteFile(p.Sig, sig, 0o644))
	return p
}

// runningSlot puts image into slot a, as if the node ran it.
func runningSlot(t *testing.T, f *fixture, image string) {
	t.Helper()
	b, err := os.ReadFile(image)
	must(t, err)
	dev, err := f.disk.OpenSlot("a")
	must(t, err)
	defer dev.Close()
	_, err = dev.WriteAt(b, 0)
	must(t, err)
}

func TestUpgradeFromDelta(t *testing.T) {
	f := newFixture(t)
	old := makeImage(t, f.dir, "1.0.0")
	runningSlot(t, f, old)
	img, url := f.release(t, "1.1.0")
	p := publishDelta(t, f, old, img, "1.0.0")
	out, err := f.upgrader().Run(context.Background(), Request{Image: url}, f.node)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, f.log.String())
	}
	data, _ := os.ReadFile(p.Data)
	index, _ := os.ReadFile(p.Index)
	imgData, _ := os.ReadFile(img)
	if !out.Delta() || out.Downloaded != int64(len(data)+len(index)) {
		t.Errorf("outcome: delta %v, downloaded %d; want the delta's %d bytes (index %d + data %d)", out.Delta(), out.Downloaded, len(data)+len(index), len(index), len(data))
	}
	if got, want := out.DeltaFrom, "the running slot a"; got != want {
		t.Errorf("built from a delta and %q, want %q", got, want)
	}
	if got, full := out.Downloaded, int64(len(imgData)); got >= full {
		t.Errorf("fetched %d bytes for a %d-byte image", got, full)
	}
	slot, _ := os.ReadFile(f.disk.path("b"))
	if !bytes.Equal(slot[:len(imgData)], imgData) {
		t.Errorf("slot b does not hold the image")
	}
	if k, _ := f.esp.ReadFile(bootloader.KernelPath("b")); !bytes.HasPrefix(k, []byte("kernel-1.1.0")) {
		t.Errorf("boot partition kernel for b = %.20q, want the new release's", k)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.dir, "work")); len(ents) != 0 {
		t.Errorf("the delta's download is still in the work folder: %v", ents)
	}
	if !strings.Contains(f.log.String(), "delta applied:") {
		t.Errorf("log lacks the delta line:\n%s", f.log.String())
	}
}

// TestDeltaRefusals: a bad delta is refused before slot b is written; a
// node that does not run the delta's starting image fetches the full one.
func TestDeltaRefusals(t *testing.T) {
	tests := []struct {
		name      string
		spoil     func(t *testing.T, f *fixture, p delta.Paths)
		running   string // what slot a holds: "old" (default) or "other"
		wantErr   string // "" for a full-image fallback
		wantDelta bool
	}{
		{name: "index signed by another key", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			_, other, _ := sign.GenerateKey(nil)
			index, _ := os.ReadFile(p.Index)
			must(t, os.WriteFile(p.Sig, sign.SignDeltaIndex(other, sha256.Sum256(index)), 0o644))
		}, wantErr: "delta index"},
		{name: "index changed after signing", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			index, _ := os.ReadFile(p.Index)
			must(t, os.WriteFile(p.Index, bytes.Replace(index, []byte(`"version":"1.1.0"`), []byte(`"version":"1.1.1"`), 1), 0o644))
		}, wantErr: "was altered"},
		{name: "data file with a wrong byte", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			flip(t, p.Data, 10)
		}, wantErr: "data file's sha256"},
		{name: "data file missing its end", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			b, _ := os.ReadFile(p.Data)
			must(t, os.WriteFile(p.Data, b[:len(b)-1], 0o644))
		}, wantErr: "truncated"},
		{name: "running another build", running: "other"},
		{name: "running another build, a delta from nothing published", running: "other", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			img := strings.TrimSuffix(p.Index, ".delta/from-1.0.0.json")
			publishDelta(t, f, "", img, "")
		}, wantDelta: true},
		{name: "no delta for the running version", spoil: func(t *testing.T, f *fixture, p delta.Paths) {
			must(t, os.RemoveAll(filepath.Dir(p.Index)))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			old := makeImage(t, f.dir, "1.0.0")
			other := makeImage(t, t.TempDir(), "1.0.0-other")
			if tt.running == "other" {
				runningSlot(t, f, other)
			} else {
				runningSlot(t, f, old)
			}
			img, url := f.release(t, "1.1.0")
			p := publishDelta(t, f, old, img, "1.0.0")
			if tt.spoil != nil {
				tt.spoil(t, f, p)
			}
			out, err := f.upgrader().Run(context.Background(), Request{Image: url}, f.node)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if slot, _ := os.ReadFile(f.disk.path("b")); len(slot) > 0 && !bytes.Equal(slot, make([]byte, len(slot))) {
					t.Errorf("slot b was written")
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, f.log.String())
			}
			if out.Delta() != tt.wantDelta {
				t.Errorf("built from a delta: %v, want %v", out.Delta(), tt.wantDelta)
			}
			if tt.wantDelta {
				full := delta.PathsFor(img, "")
				data, _ := os.ReadFile(full.Data)
				index, _ := os.ReadFile(full.Index)
				if got, want := out.Downloaded, int64(len(data)+len(index)); got != want {
					t.Errorf("downloaded %d bytes, want the delta from nothing's %d", got, want)
				}
				slot, _ := os.ReadFile(f.disk.path("b"))
				imgData, _ := os.ReadFile(img)
				if !bytes.Equal(slot[:len(imgData)], imgData) {
					t.Errorf("slot b does not hold the image")
				}
				return
			}
			checkWroteSlotB(t, f, img, out)
		})
	}
}
