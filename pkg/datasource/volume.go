package datasource

import (
	"encoding/binary"
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
	"github.com/keso-os/keso/pkg/host"
)

// File system types a labelled volume can have.
const (
	FSISO9660 = "iso9660"
	FSFAT12   = "fat12"
	FSFAT16   = "fat16"
	FSFAT32   = "fat32"
)

// Label is what ProbeLabel found at the start of a device.
type Label struct {
	FSType string // FSISO9660, FSFAT12, …
	Label  string // volume label, trailing spaces removed
	// Size is the file system's size in bytes as its own header says (FAT);
	// 0 when unknown (ISO 9660 is read up to the end of the device).
	Size int64
}

// ISO 9660: the primary volume descriptor is the 2048-byte sector 16; it
// starts with type 1 and "CD001"; the volume identifier is 32 bytes at +40.
const (
	isoPVD      = 16 * 2048
	isoLabelOff = 40
	isoLabelLen = 32
)

// ProbeLabel reads the volume label of an ISO 9660 or FAT file system at the
// start of r. ok is false when r holds neither. It reads the label the way
// blkid does: for FAT the root directory's volume-label entry wins over the
// boot sector's copy (Windows and `fatlabel` may update only the former).
func ProbeLabel(r io.ReaderAt) (l Label, ok bool) {
	pvd := make([]byte, isoLabelOff+isoLabelLen)
	if _, err := r.ReadAt(pvd, isoPVD); err == nil && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return Label{FSType: FSISO9660, Label: strings.TrimRight(string(pvd[isoLabelOff:]), " \x00")}, true
	}
	return probeFAT(r)
}

// fatGeometry is the part of a FAT boot sector needed to find the label and
// the file system's type and size.
type fatGeometry struct {
	bytesPerSector    uint32
	sectorsPerCluster uint32
	reserved          uint32
	fats              uint32
	rootEntries       uint32
	totalSectors      uint32
	fatSectors        uint32
	rootCluster       uint32 // FAT32
}

func probeFAT(r io.ReaderAt) (Label, bool) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return Label{}, false
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return Label{}, false
	}
	le16 := func(off int) uint32 { return uint32(binary.LittleEndian.Uint16(bs[off:])) }
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(bs[off:]) }
	g := fatGeometry{
		bytesPerSector:    le16(11),
		sectorsPerCluster: uint32(bs[13]),
		reserved:          le16(14),
		fats:              uint32(bs[16]),
		rootEntries:       le16(17),
		totalSectors:      le16(19),
		fatSectors:        le16(22),
	}
	if g.totalSectors == 0 {
		g.totalSectors = le32(32)
	}
	if g.fatSectors == 0 {
		g.fatSectors = le32(36)
		g.rootCluster = le32(44)
	}
	switch g.bytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return Label{}, false // an MBR or anything else that is not a FAT boot sector
	}
	if g.sectorsPerCluster == 0 || g.sectorsPerCluster&(g.sectorsPerCluster-1) != 0 ||
		g.reserved == 0 || g.fats == 0 || g.fatSectors == 0 || g.totalSectors == 0 {
		return Label{}, false
	}
	// Cluster count decides the FAT type (Microsoft's FAT specification).
	rootSectors := (g.rootEntries*32 + g.bytesPerSector - 1) / g.bytesPerSector
	meta := g.reserved + g.fats*g.fatSectors + rootSectors
	if meta >= g.totalSectors {
		return Label{}, false
	}
	clusters := (g.totalSectors - meta) / g.sectorsPerCluster
	l := Label{Size: int64(g.totalSectors) * int64(g.bytesPerSector)}
	labelOff, sigOff := 43, 38
	switch {
	case clusters < 4085:
		l.FSType = FSFAT12
	case clusters < 65525:
		l.FSType = FSFAT16
	default:
		l.FSType, labelOff, sigOff = FSFAT32, 71, 66
	}
	if bs[sigOff] == 0x29 {
		l.Label = trimLabel(bs[labelOff : labelOff+11])
	}
	if v, ok := fatRootLabel(r, g, l.FSType); ok {
		l.Label = v
	}
	if l.Label == "NO NAME" {
		l.Label = ""
	}
	return l, true
}

// fatRootLabel looks for the volume-label entry in the root directory (for
// FAT32, in its first cluster).
func fatRootLabel(r io.ReaderAt, g fatGeometry, fstype string) (string, bool) {
	var off, size int64
	bps := int64(g.bytesPerSector)
	if fstype == FSFAT32 {
		if g.rootCluster < 2 {
			return "", false
		}
		dataStart := int64(g.reserved+g.fats*g.fatSectors) * bps
		off = dataStart + int64(g.rootCluster-2)*int64(g.sectorsPerCluster)*bps
		size = int64(g.sectorsPerCluster) * bps
	} else {
		off = int64(g.reserved+g.fats*g.fatSectors) * bps
		size = int64(g.rootEntries) * 32
	}
	if size <= 0 || size > 1<<20 {
		return "", false
	}
	dir := make([]byte, size)
	if n, err := r.ReadAt(dir, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return "", false
	} else {
		dir = dir[:n]
	}
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break // end of directory
		}
		attr := e[11]
		if e[0] == 0xE5 || attr == 0x0F {
			continue // deleted, or a long-name part
		}
		if attr&0x08 != 0 && attr&0x10 == 0 {
			return trimLabel(e[:11]), true
		}
	}
	return "", false
}

func trimLabel(b []byte) string { return strings.TrimRight(string(b), " \x00") }

// Volume is a read-only file system on a device or image file, read in
// user space (no mount).
type Volume struct {
	Device string // the device path shown in names, e.g. /dev/sr1
	Label  Label
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
	l, ok := ProbeLabel(f)
	if !ok {
		return nil, fmt.Errorf("read %s: no ISO 9660 or FAT file system", display)
	}
	b := file.New(f, true)
	var fsys filesystem.FileSystem
	switch l.FSType {
	case FSISO9660:
		fsys, err = iso9660.Read(b, 0, 0, 0)
	case FSFAT12:
		fsys, err = fat12.Read(b, l.Size, 0, 512)
	case FSFAT16:
		fsys, err = fat16.Read(b, l.Size, 0, 512)
	case FSFAT32:
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
		l, ok := ProbeLabel(f)
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
