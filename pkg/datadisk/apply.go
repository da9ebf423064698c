package datadisk

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// FS is the node's root-prefixed file system; host.FS implements it.
type FS interface {
	ReadFile(p string) ([]byte, error)
	ReadDir(p string) ([]fs.DirEntry, error)
	Stat(p string) (fs.FileInfo, error)
	Path(p string) string
}

// Host does the real work on devices; Real implements it with host.Linux
// and go-diskfs. Paths are host paths (FS.Path of the node path).
type Host interface {
	// ReadHead reads the first n bytes of a device.
	ReadHead(device string, n int) ([]byte, error)
	// BlockSize is the device's size in bytes.
	BlockSize(device string) (int64, error)
	// FormatExt4 creates ext4 over the whole device, zeroing its first and
	// last MiB first when wipe is set.
	FormatExt4(device, label string, wipe bool) error
	Mount(source, target, fstype string, flags uintptr, data string) error
	GrowExt4(mountpoint string, deviceBytes int64) (before, after uint64, err error)
}

// Apply runs the disks phase.
func Apply(cfg *cloudconfig.Config, fsys FS, h Host, rec *phase.Recorder) {
	disks := cfg.Keso.Disks
	if len(disks) == 0 {
		return
	}
	st := State{Devices: map[string]Device{}}
	byLabel := false
	reported := map[string]bool{}
	for i, d := range disks {
		if d.Device == "" {
			byLabel = true
			continue
		}
		if _, done := st.Devices[d.Device]; done {
			continue
		}
		dev, err := probe(fsys, h, d.Device)
		if err != nil {
			at := fmt.Sprintf("keso.disks[%d]", i)
			rec.Fail(at+".device", err)
			reported[at] = true
			continue
		}
		st.Devices[d.Device] = dev
	}
	if byLabel {
		for _, p := range blockDevices(fsys) {
			if _, done := st.Devices[p]; done {
				continue
			}
			if dev, err := probe(fsys, h, p); err == nil {
				st.Devices[p] = dev
			}
		}
	}
	mi, err := fsys.ReadFile("/proc/self/mountinfo")
	if err != nil {
		rec.Fail("keso.disks", fmt.Errorf("read mount table: %w", err))
		return
	}
	st.Mounts = ParseMountinfo(mi)
	steps, fails := Plan(disks, st)
	for _, f := range fails {
		if !reported[f.At] { // a probe failure was reported already
			rec.Fail(f.At, f.Err)
		}
	}
	broken := map[string]bool{}
	for _, s := range steps {
		if broken[s.At] {
			continue
		}
		if err := run(fsys, h, s, rec); err != nil {
			rec.Fail(s.At, err)
			broken[s.At] = true
		}
	}
}

func run(fsys FS, h Host, s Step, rec *phase.Recorder) error {
	dev := fsys.Path(s.Device)
	switch s.Op {
	case OpFormat:
		if err := h.FormatExt4(dev, s.Label, s.Wipe); err != nil {
			return err
		}
		detail := "ext4"
		if s.Label != "" {
			detail += ", label " + s.Label
		}
		if s.Wipe {
			detail += ", forced over the old data"
		}
		rec.Change("format", s.Device, detail)
	case OpMount:
		if err := h.Mount(dev, fsys.Path(s.Target), s.FSType, s.Flags, s.Data); err != nil {
			return err
		}
		rec.Change("mount", s.Target, s.Device+" ("+s.FSType+")")
	case OpGrow:
		size, err := h.BlockSize(dev)
		if err != nil {
			return err
		}
		before, after, err := h.GrowExt4(fsys.Path(s.Target), size)
		if err != nil {
			return err
		}
		if after > before {
			rec.Change("grow", s.Target, fmt.Sprintf("%d to %d blocks", before, after))
		}
	}
	return nil
}

// probe reads what is on a device.
func probe(fsys FS, h Host, p string) (Device, error) {
	fi, err := fsys.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Device{}, fmt.Errorf("device %s not found", p)
		}
		return Device{}, err
	}
	head, err := h.ReadHead(fsys.Path(p), blockdev.HeadSize)
	if err != nil {
		return Device{}, err
	}
	dev := Device{Path: p, Probe: blockdev.Detect(head)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode()&fs.ModeDevice != 0 {
		dev.Dev = fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	}
	return dev, nil
}

// blockDevices lists /dev/<name> for every block device in sysfs
// (host.ScanBlock), except RAM disks.
func blockDevices(fsys FS) []string {
	devs, err := host.ScanBlock(fsys.Path("/"))
	if err != nil {
		return nil
	}
	var out []string
	for _, b := range devs {
		if !b.RAM() {
			out = append(out, path.Join("/dev", b.Name))
		}
	}
	return out
}
