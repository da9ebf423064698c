package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/delta"
)

// deltaSource is an image on this node that a delta may start from.
type deltaSource struct {
	version string // the version it holds, which names the delta (from-VERSION)
	what    string // where it is, for the log
	// open returns the image ix starts from, or a zero oldImage when this
	// source does not hold it (said in the log).
	open func(ix delta.Index) (oldImage, error)
}

// oldImage is the image a delta is applied against.
type oldImage struct {
	r     io.ReaderAt
	close func()
}

// deltaSources are the images this node holds, the running slot's first:
// then the inactive slot's (a staged image, or the version run before),
// by what a seed copy of it in WorkDir says (the slot may already be half
// rewritten by an upgrade a power cut stopped) or by what the slot holds.
func (u *Upgrader) deltaSources(node Node) []deltaSource {
	srcs := []deltaSource{u.runningSource(node)}
	seen := map[string]bool{node.Version: true}
	other := node.Slot.Other()
	for _, v := range append(u.seedVersions(), u.slotVersion(other)) {
		if v != "" && !seen[v] {
			seen[v] = true
			srcs = append(srcs, u.inactiveSource(other, v))
		}
	}
	return srcs
}

// runningSource is the running slot, read in place.
func (u *Upgrader) runningSource(node Node) deltaSource {
	return deltaSource{version: node.Version, what: "the running slot " + string(node.Slot),
		open: func(ix delta.Index) (oldImage, error) {
			dev, err := u.Disk.OpenSlot(node.Slot)
			if err != nil {
				return oldImage{}, fmt.Errorf("open the running slot %s: %w", node.Slot, err)
			}
			if err := delta.CheckFrom(ix, dev); err != nil {
				dev.Close()
				u.logf("%v", err)
				return oldImage{}, nil
			}
			return oldImage{r: dev, close: func() { dev.Close() }}, nil
		}}
}

// inactiveSource is version's image in the inactive slot. The delta is
// written into that same slot, so it is applied against a copy (a seed in
// WorkDir, as large as the image, as a full download would be): the copy
// is checked against the index's sha256, kept until the slot is staged or
// armed, and reused by an upgrade that a power cut stopped.
func (u *Upgrader) inactiveSource(slot bootloader.Slot, version string) deltaSource {
	seed := u.seedPath(version)
	return deltaSource{version: version, what: fmt.Sprintf("slot %s's %s", slot, version),
		open: func(ix delta.Index) (oldImage, error) {
			if f, err := os.Open(seed); err == nil {
				if err := delta.CheckFrom(ix, f); err == nil {
					u.logf("applying the delta against %s, slot %s's %s copied before", seed, slot, version)
					return oldImage{r: f, close: func() { f.Close() }}, nil
				}
				f.Close()
				u.logf("%s is not the image the delta starts from: removed", seed)
				os.Remove(seed)
			}
			dev, err := u.Disk.OpenSlot(slot)
			if err != nil {
				return oldImage{}, fmt.Errorf("open slot %s: %w", slot, err)
			}
			defer dev.Close()
			if err := copySeed(dev, ix.From, seed); err != nil {
				u.logf("slot %s: %v", slot, err)
				return oldImage{}, nil
			}
			f, err := os.Open(seed)
			if err != nil {
				return oldImage{}, fmt.Errorf("open %s: %w", seed, err)
			}
			u.logf("copied slot %s's %s to %s to apply the delta against (the delta is written into slot %s)", slot, version, seed, slot)
			return oldImage{r: f, close: func() { f.Close() }}, nil
		}}
}

// copySeed copies want's bytes from src into dst (through dst.part,
// synced, then renamed), if they have want's sha256.
func copySeed(src io.ReaderAt, want delta.Blob, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("copy the image a delta starts from: %w", err)
	}
	part := dst + ".part"
	f, err := os.Create(part)
	if err != nil {
		return fmt.Errorf("copy the image a delta starts from: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.NewSectionReader(src, 0, want.Size)); err != nil {
		return fmt.Errorf("copy the image a delta starts from to %s: %w", part, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("its image's sha256 is %s, the delta starts from %s", got, want.SHA256)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("copy the image a delta starts from: sync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("copy the image a delta starts from: close %s: %w", part, err)
	}
	if err := os.Rename(part, dst); err != nil {
		return fmt.Errorf("copy the image a delta starts from: %w", err)
	}
	return nil
}

const seedPrefix, seedSuffix = "seed-", ".squashfs"

func (u *Upgrader) seedPath(version string) string {
	return filepath.Join(u.WorkDir, seedPrefix+url.PathEscape(version)+seedSuffix)
}

// seedVersions are the versions of the seed copies in WorkDir.
func (u *Upgrader) seedVersions() []string {
	paths, _ := filepath.Glob(filepath.Join(u.WorkDir, seedPrefix+"*"+seedSuffix))
	var vs []string
	for _, p := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), seedPrefix), seedSuffix)
		if v, err := url.PathUnescape(name); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// removeSeeds removes the seed copies once the slot they were copied from
// holds the new image: they are of no more use.
func (u *Upgrader) removeSeeds() {
	for _, v := range u.seedVersions() {
		os.Remove(u.seedPath(v))
	}
}

// slotVersion is the version of the image in slot, "" when it holds none
// that can be read (a blank slot, one being written).
func (u *Upgrader) slotVersion(slot bootloader.Slot) string {
	dev, err := u.Disk.OpenSlot(slot)
	if err != nil {
		return ""
	}
	defer dev.Close()
	v, err := ReadVersion(dev, dev.Size())
	if err != nil {
		return ""
	}
	return v
}
