package datadisk

import (
	"fmt"
	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/mountinfo"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

// Device is one block device as Apply found it.
type Device struct {
	Path  string // node path, /dev/vdb
	Probe blockdev.Probe
	// Dev is "major:minor" ("" for a regular file, as in tests).
	Dev string
}

// Mounted is one line of /proc/self/mountinfo.
type Mounted struct {
	Dev    string // major:minor
	Target string
	FSType string
	Source string
}

// Op is what a Step does.
type Op string

// Steps, in the order they run for one disk.
const (
	OpFormat Op = "format"
	OpMount  Op = "mount"
	OpGrow   Op = "grow"
)

// Step is one action on one disk.
type Step struct {
	At     string // keso.disks[i]
	Op     Op
	Device string
	Target string  // mount and grow
	FSType string  // mount
	Flags  uintptr // mount
	Data   string  // mount
	Label  string  // format
	Wipe   bool    // format: zero the ends first (forced over old data)
}

// State is what Plan decides from.
type State struct {
	// Devices by node path: every configured device, and every block
	// device of the machine when a disk is selected by label.
	Devices map[string]Device
	Mounts  []Mounted
}

// Failure is a disk that cannot be set up as configured.
type Failure struct {
	At  string
	Err error
}

// mountFlags maps mount options that are flags, not file-system data.
var mountFlags = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME,
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "rw": 0, "defaults": 0,
}

// MountOptions splits options into flags and data.
func MountOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		for _, o := range strings.Split(o, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if f, ok := mountFlags[o]; ok {
				flags |= f
			} else {
				data = append(data, o)
			}
		}
	}
	return flags, strings.Join(data, ",")
}

// Plan decides the steps for every configured disk.
func Plan(disks []cloudconfig.Disk, st State) ([]Step, []Failure) {
	var steps []Step
	var fails []Failure
	for i, d := range disks {
		at := fmt.Sprintf("keso.disks[%d]", i)
		s, err := planDisk(at, d, st)
		if err != nil {
			fails = append(fails, Failure{at, err})
		}
		steps = append(steps, s...)
	}
	return steps, fails
}

func findDevice(d cloudconfig.Disk, st State) (Device, error) {
	if d.Device != "" {
		dev, ok := st.Devices[d.Device]
		if !ok {
			return Device{}, fmt.Errorf("device %s not found", d.Device)
		}
		return dev, nil
	}
	var found []Device
	for _, dev := range st.Devices {
		if dev.Probe.Label == d.Label && dev.Probe.Mountable() {
			found = append(found, dev)
		}
	}
	switch len(found) {
	case 0:
		return Device{}, fmt.Errorf("no device has a file system labelled %q", d.Label)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, f := range found {
		names = append(names, f.Path)
	}
	return Device{}, fmt.Errorf("%d devices have a file system labelled %q (%s); select one by device", len(found), d.Label, strings.Join(names, ", "))
}

func planDisk(at string, d cloudconfig.Disk, st State) ([]Step, error) {
	dev, err := findDevice(d, st)
	if err != nil {
		return nil, err
	}
	p := dev.Probe
	format, wipe := false, false
	switch {
	case p.Empty():
		if !d.Format && !d.Force {
			if d.Mount == "" && !d.Grow {
				return nil, nil
			}
			return nil, fmt.Errorf("%s has no file system; set format: true to create ext4 on it", dev.Path)
		}
		format = true
	case p.Type == "ext4" && (d.FSLabel == "" || p.Label == d.FSLabel || !d.Force):
		// Already what we want (a label mismatch alone is not worth
		// destroying data without force).
	case d.Force:
		format, wipe = true, true
	case d.Format && !p.IsExt():
		return nil, fmt.Errorf("%s already holds %s; not formatting it (set force: true to destroy it and create ext4)", dev.Path, p.Type)
	}
	var steps []Step
	fstype := p.Type
	if format {
		steps = append(steps, Step{At: at, Op: OpFormat, Device: dev.Path, Label: d.FSLabel, Wipe: wipe})
		fstype = "ext4"
	} else if p.IsExt() {
		fstype = "ext4"
	}
	if d.Mount == "" {
		if d.Grow {
			return steps, fmt.Errorf("grow needs mount: ext4 is grown online, while mounted")
		}
		return steps, nil
	}
	if !format && !p.Mountable() {
		return steps, fmt.Errorf("%s holds %s, which cannot be mounted", dev.Path, p.Type)
	}
	mounted := false
	for _, m := range st.Mounts {
		if m.Target != d.Mount {
			continue
		}
		if !format && ((dev.Dev != "" && m.Dev == dev.Dev) || m.Source == dev.Path) {
			mounted = true
			continue
		}
		return steps, fmt.Errorf("%s is already a mount point of %s (%s)", d.Mount, m.Source, m.FSType)
	}
	if !mounted {
		flags, data := MountOptions(d.Options)
		steps = append(steps, Step{At: at, Op: OpMount, Device: dev.Path, Target: d.Mount, FSType: fstype, Flags: flags, Data: data})
	}
	if d.Grow {
		if fstype != "ext4" {
			return steps, fmt.Errorf("grow: only ext4 can be grown, %s holds %s", dev.Path, fstype)
		}
		steps = append(steps, Step{At: at, Op: OpGrow, Device: dev.Path, Target: d.Mount})
	}
	return steps, nil
}

// ParseMountinfo reads /proc/self/mountinfo; lines it cannot read are skipped.
func ParseMountinfo(b []byte) []Mounted {
	var out []Mounted
	for _, line := range strings.Split(string(b), "\n") {
		ms, err := mountinfo.Parse(line)
		if err != nil || len(ms) == 0 {
			continue
		}
		m := ms[0]
		out = append(out, Mounted{Dev: m.Dev, Target: m.MountPoint, FSType: m.FSType, Source: m.Source})
	}
	return out
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}
