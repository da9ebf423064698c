package initrd

import (
	"fmt"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/cmdline"
)

// Mode is how the root file system is found.
type Mode string

// The boot modes.
const (
	ModeDisk    Mode = "disk"
	ModeLive    Mode = "live"
	ModeNetboot Mode = "netboot"
	ModeAuto    Mode = "auto" // none given: try disk slot a, then live
)

// Plan is what the kernel command line asks the initrd stage to do.
type Plan struct {
	Mode     Mode
	Slot     string        // "a" or "b" in disk mode
	MBRDisk  string        // keso.mbr: the slots are partitions 2/3 of the MBR disk with this signature
	URL      string        // netboot root URL
	SHA256   string        // optional expected digest of the netboot root, lower-case hex
	Debug    bool          // keso.debug: rescue shell on failure
	RootWait time.Duration // how long to wait for the root device
}

// DefaultRootWait bounds the wait for a root device to appear.
const DefaultRootWait = 45 * time.Second

// PlanFromCmdline decides the boot mode from the kernel command line.
func PlanFromCmdline(p cmdline.Params) (Plan, error) {
	pl := Plan{Mode: ModeAuto, Debug: p.Has("keso.debug"), RootWait: DefaultRootWait}
	if v, ok := p.Get("keso.root_wait"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, err2 := time.ParseDuration(v + "s"); err2 == nil {
				d, err = secs, nil
			}
		}
		if err != nil || d <= 0 {
			return pl, fmt.Errorf("keso.root_wait=%q: want a duration such as 30s", v)
		}
		pl.RootWait = d
	}
	var modes []string
	if u, ok := p.Get("keso.root"); ok {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return pl, fmt.Errorf("keso.root=%q: want an http:// or https:// URL of a squashfs", u)
		}
		pl.Mode, pl.URL = ModeNetboot, u
		modes = append(modes, "keso.root")
		if h, ok := p.Get("keso.root_sha256"); ok {
			h = strings.ToLower(h)
			if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
				return pl, fmt.Errorf("keso.root_sha256=%q: want 64 hex digits", h)
			}
			pl.SHA256 = h
		}
	}
	if s, ok := p.Get("keso.slot"); ok {
		s = strings.ToLower(s)
		if s != "a" && s != "b" {
			return pl, fmt.Errorf("keso.slot=%q: want a or b", s)
		}
		pl.Mode, pl.Slot = ModeDisk, s
		modes = append(modes, "keso.slot")
	}
	if p.Has("keso.live") {
		pl.Mode = ModeLive
		modes = append(modes, "keso.live")
	}
	if len(modes) > 1 {
		return pl, fmt.Errorf("conflicting boot modes on the command line: %s; give only one", strings.Join(modes, ", "))
	}
	if v, ok := p.Get("keso.mbr"); ok {
		id, err := ParseDiskID(v)
		if err != nil {
			return pl, err
		}
		if pl.Mode != ModeDisk && pl.Mode != ModeAuto {
			return pl, fmt.Errorf("keso.mbr names the disk of keso.slot; it does not go with %s", strings.Join(modes, ", "))
		}
		pl.Mode, pl.MBRDisk = ModeDisk, id
	}
	return pl, nil
}

// RootPartLabel is the GPT partition label of a disk slot.
func RootPartLabel(slot string) string { return bootloader.Slot(strings.ToLower(slot)).PartLabel() }

// Labels and paths fixed by docs/boot.md (pkg/bootloader names the labels).
const (
	StatePartLabel = bootloader.LabelState
	ESPPartLabel   = bootloader.LabelEFI
	LiveLabel      = bootloader.LabelLive
	LiveSquashfs   = "keso/root.squashfs"
)
