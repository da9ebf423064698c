package datasource

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/host"
)

// Volume is a read-only file system on a device or image file, read in
// user space (no mount).
type Volume struct {
	Device string // the device path shown in names, e.g. /dev/sr1
	Label  blockdev.Label
	f      *os.File
	fs     filesystem.FileSystem
}

// OpenVolume opens the ISO 9660 or FAT file system at the start of the file
// or block device at p for reading. display is the path used in messages
// and source names (the device path without the test root).
func OpenVolume(p, display string) (v *Volume, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", display, err)
	}
	defer func() {
		// go-diskfs parses untrusted bytes; a malformed volume must not
		// take PID 1 down with it.
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: malformed file system: %v", display, r)
		}
		if err != nil {
			f.Close()
			v = nil
		}
	}()
	l, ok := blockdev.ProbeLabel(f)
	if !ok {
		return nil, fmt.Errorf("read %s: no ISO 9660 or FAT file system", display)
	}
	b := file.New(f, true)
	var fsys filesystem.FileSystem
	switch l.FSType {
	case blockdev.FSISO9660:
		fsys, err = iso9660.Read(b, 0, 0, 0)
	case blockdev.FSFAT12:
		fsys, err = fat12.Read(b, l.Size, 0, 512)
	case blockdev.FSFAT16:
		fsys, err = fat16.Read(b, l.Size, 0, 512)
	case blockdev.FSFAT32:
		fsys, err = fat32.Read(b, l.Size, 0, int64(512))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s file system on %s: %w", l.FSType, display, err)
	}
	return &Volume{Device: display, Label: l, f: f, fs: fsys}, nil
}

// ReadFile returns the content of the file at name (slash-separated,
// relative to the volume's root).
func (v *Volume) ReadFile(name string) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("read %s on %s: malformed file system: %v", name, v.Device, r)
		}
	}()
	f, err := v.fs.OpenFile("/"+strings.TrimPrefix(path.Clean("/"+name), "/"), os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", name, v.Device, notExist(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", name, v.Device, err)
	}
	if st.Size() > maxUserData {
		return nil, fmt.Errorf("read %s on %s: %d bytes, larger than %d MiB", name, v.Device, st.Size(), maxUserData>>20)
	}
	// Read exactly the file's size: go-diskfs v1.9.4's FAT reader returns
	// bytes past the end of a file when a read starts mid-cluster, so
	// io.ReadAll's small reads would pad the file with the cluster's slack.
	data = make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", name, v.Device, err)
	}
	return data, nil
}

// notExist makes go-diskfs's "not found" errors match fs.ErrNotExist.
func notExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return err
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "not found") || strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such") {
		return fmt.Errorf("%w (%v)", os.ErrNotExist, err)
	}
	return err
}

// Close releases the device.
func (v *Volume) Close() error { return v.f.Close() }

// maxUserData bounds what is read from any one source (user-data is
// usually a few KiB; a write_files bundle may be larger).
const maxUserData = 16 << 20

// Devices finds labelled volumes among the block devices that sysfs lists
// under Root (Root/sys/class/block, devices at Root/dev/NAME).
type Devices struct {
	Root string
	// Wait, when set, rescans every 200 ms for up to this long when no
	// device has the label yet (a CD or USB stick whose driver was loaded
	// moments ago may still be probing). The default is one scan: the
	// initrd loads the block drivers long before the system stage runs.
	Wait time.Duration
}

// blockDevices lists the devices worth probing (host.ScanBlock): every
// one with a non-zero size, RAM disks excepted, as /dev/NAME paths, sorted.
func (d Devices) blockDevices() ([]string, error) {
	devs, err := host.ScanBlock(d.Root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range devs {
		// A CD drive reports size 0 until its medium is first opened, so sr*
		// is probed anyway (an empty drive just fails to read); other
		// zero-size devices are unattached loop devices.
		if b.RAM() || (b.Sectors == 0 && !strings.HasPrefix(b.Name, "sr")) {
			continue
		}
		out = append(out, "/dev/"+b.Name)
	}
	return out, nil
}

// Find returns the first volume (in device-name order) whose label is one of
// labels, compared without regard to case (mkfs.vfat and Windows may store a
// FAT label upper-cased). It wraps ErrNotFound when there is none; seen
// lists what was probed, for the report.
func (d Devices) Find(labels ...string) (v *Volume, seen []string, err error) {
	deadline := time.Now().Add(d.Wait)
	for {
		v, seen, err = d.find(labels...)
		if !errors.Is(err, ErrNotFound) || !time.Now().Before(deadline) {
			return v, seen, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d Devices) find(labels ...string) (v *Volume, seen []string, err error) {
	devs, err := d.blockDevices()
	if err != nil {
		return nil, nil, err
	}
	for _, dev := range devs {
		p := filepath.Join(d.Root, dev)
		f, err := os.Open(p)
		if err != nil {
			seen = append(seen, dev+" (unreadable)")
			continue
		}
		l, ok := blockdev.ProbeLabel(f)
		f.Close()
		if !ok {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s (%s %q)", dev, l.FSType, l.Label))
		for _, want := range labels {
			if strings.EqualFold(l.Label, want) {
				v, err := OpenVolume(p, dev)
				if err != nil {
					return nil, seen, err
				}
				return v, seen, nil
			}
		}
	}
	return nil, seen, fmt.Errorf("no volume labelled %s among %d block devices: %w", strings.Join(labels, " or "), len(devs), ErrNotFound)
}
