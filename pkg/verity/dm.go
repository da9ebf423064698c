package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// The device-mapper ioctl interface (linux/dm-ioctl.h), written out here
// rather than taken from a library: the module graph has none, the few
// small Go ones are not kept up closely enough to be worth a dependency of
// PID 1, and the part keso needs is five commands. TestIoctlLayout checks
// every number below against the kernel header when a C compiler and the
// header are at hand.
//
// Every command passes one buffer, in and out, that starts with
//
//	struct dm_ioctl {            // 312 bytes, 8-aligned
//	    __u32 version[3];        //   0  in: the interface version we speak
//	    __u32 data_size;         //  12  the whole buffer
//	    __u32 data_start;        //  16  where the payload starts (we: 312)
//	    __u32 target_count;      //  20
//	    __s32 open_count;        //  24  out
//	    __u32 flags;             //  28
//	    __u32 event_nr;          //  32  udev cookie; 0, keso has no udev
//	    __u32 padding;           //  36
//	    __u64 dev;               //  40  out: huge_encode_dev(major:minor)
//	    char  name[128];         //  48
//	    char  uuid[129];         // 176
//	    char  data[7];           // 305  padding to 312
//	};
//
// and DM_TABLE_LOAD's payload is, per target, a
//
//	struct dm_target_spec {      // 40 bytes
//	    __u64 sector_start;      //   0
//	    __u64 length;            //   8
//	    __s32 status;            //  16  out
//	    __u32 next;              //  20  bytes from this spec to the next
//	    char  target_type[16];   //  24
//	};
//
// followed by the target's parameter string, NUL-terminated and padded so
// the next spec is 8-aligned. The ioctl numbers are _IOWR(0xfd, cmd,
// struct dm_ioctl) in the generic _IOC encoding that amd64, arm64 and arm
// share (not mips, powerpc or sparc, which keso does not build for).
const (
	dmIoctlSize    = 312
	dmSpecSize     = 40
	dmNameLen      = 128
	dmUUIDLen      = 129
	dmTypeLen      = 16
	dmVersionMajor = 4
	dmVersionMinor = 0 // the oldest minor with everything used here

	offDMVersion     = 0
	offDMDataSize    = 12
	offDMDataStart   = 16
	offDMTargetCount = 20
	offDMOpenCount   = 24
	offDMFlags       = 28
	offDMEventNr     = 32
	offDMDev         = 40
	offDMName        = 48
	offDMUUID        = 176

	dmReadonlyFlag   = 1 << 0
	dmSuspendFlag    = 1 << 1
	dmBufferFullFlag = 1 << 8

	dmResultBuf = 16 << 10 // room for the kernel's answer
)

// dmCmd is a device-mapper command number (the ioctl's nr).
type dmCmd uint32

const (
	dmVersion    dmCmd = 0
	dmDevCreate  dmCmd = 3
	dmDevRemove  dmCmd = 4
	dmDevSuspend dmCmd = 6 // without DM_SUSPEND_FLAG: resume
	dmDevStatus  dmCmd = 7
	dmTableLoad  dmCmd = 9
)

var dmCmdNames = map[dmCmd]string{
	dmVersion: "DM_VERSION", dmDevCreate: "DM_DEV_CREATE", dmDevRemove: "DM_DEV_REMOVE",
	dmDevSuspend: "DM_DEV_SUSPEND", dmDevStatus: "DM_DEV_STATUS", dmTableLoad: "DM_TABLE_LOAD",
}

func (c dmCmd) String() string {
	if s, ok := dmCmdNames[c]; ok {
		return s
	}
	return fmt.Sprintf("DM_CMD_%d", uint32(c))
}

// ioctlNumber is _IOWR(0xfd, c, struct dm_ioctl).
func (c dmCmd) ioctlNumber() uint32 {
	const iocReadWrite = 3
	return iocReadWrite<<30 | dmIoctlSize<<16 | 0xfd<<8 | uint32(c)
}

// dmHeader is the decoded struct dm_ioctl.
type dmHeader struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name        string
	UUID        string
}

// Major and Minor undo the kernel's huge_encode_dev.
func (h dmHeader) Major() uint32 { return uint32(h.Dev&0xfff00) >> 8 }
func (h dmHeader) Minor() uint32 { return uint32(h.Dev&0xff) | uint32(h.Dev>>12)&0xfff00 }

// checkName refuses what the kernel would (a '/', too long) and what would
// make a poor device name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) >= dmNameLen || strings.ContainsAny(name, "/ \t\n\x00") {
		return fmt.Errorf("%w: device-mapper name %q", ErrParams, name)
	}
	return nil
}

// encodeDM builds the buffer for one command on device name.
func encodeDM(name string, flags uint32, targets []Target) ([]byte, error) {
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	var payload []byte
	for i, t := range targets {
		if t.Type == "" || len(t.Type) >= dmTypeLen {
			return nil, fmt.Errorf("%w: target type %q", ErrParams, t.Type)
		}
		if strings.IndexByte(t.Params, 0) >= 0 {
			return nil, fmt.Errorf("%w: NUL in the parameters of target %d", ErrParams, i)
		}
		plen := (len(t.Params) + 1 + 7) &^ 7 // NUL, then up to the next 8
		spec := make([]byte, dmSpecSize+plen)
		binary.NativeEndian.PutUint64(spec[0:], t.Start)
		binary.NativeEndian.PutUint64(spec[8:], t.Length)
		binary.NativeEndian.PutUint32(spec[20:], uint32(len(spec)))
		copy(spec[24:24+dmTypeLen], t.Type)
		copy(spec[dmSpecSize:], t.Params)
		payload = append(payload, spec...)
	}
	size := max(dmIoctlSize+len(payload), dmResultBuf)
	b := make([]byte, size)
	ne := binary.NativeEndian // the kernel's own byte order
	ne.PutUint32(b[offDMVersion:], dmVersionMajor)
	ne.PutUint32(b[offDMVersion+4:], dmVersionMinor)
	ne.PutUint32(b[offDMDataSize:], uint32(size))
	ne.PutUint32(b[offDMDataStart:], dmIoctlSize)
	ne.PutUint32(b[offDMTargetCount:], uint32(len(targets)))
	ne.PutUint32(b[offDMFlags:], flags)
	copy(b[offDMName:offDMName+dmNameLen-1], name)
	copy(b[dmIoctlSize:], payload)
	return b, nil
}

// decodeDM reads the header the kernel wrote back.
func decodeDM(b []byte) dmHeader {
	ne := binary.NativeEndian
	h := dmHeader{
		DataSize:    ne.Uint32(b[offDMDataSize:]),
		DataStart:   ne.Uint32(b[offDMDataStart:]),
		TargetCount: ne.Uint32(b[offDMTargetCount:]),
		OpenCount:   int32(ne.Uint32(b[offDMOpenCount:])),
		Flags:       ne.Uint32(b[offDMFlags:]),
		EventNr:     ne.Uint32(b[offDMEventNr:]),
		Dev:         ne.Uint64(b[offDMDev:]),
		Name:        cString(b[offDMName : offDMName+dmNameLen]),
		UUID:        cString(b[offDMUUID : offDMUUID+dmUUIDLen]),
	}
	for i := range h.Version {
		h.Version[i] = ne.Uint32(b[offDMVersion+4*i:])
	}
	return h
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// dmSys is what a Mapper does to the system: the one seam between the
// pure encoding above and the kernel. dm_linux.go implements it.
type dmSys interface {
	// ioctl runs one device-mapper command with buf as its in/out buffer.
	ioctl(cmd dmCmd, buf []byte) error
	// blockNode makes path a block device node for major:minor unless it
	// already is one (devtmpfs or udev made it).
	blockNode(path string, major, minor uint32) error
	// removeNode removes path if it is still a block device node for
	// major:minor (one blockNode made where no devtmpfs removes it).
	removeNode(path string, major, minor uint32) error
	sleep(time.Duration)
}

// Mapper creates and removes device-mapper devices through the control
// device, without libdevmapper, dmsetup or udev.
type Mapper struct {
	sys     dmSys
	control string // for error messages
	devDir  string // where dm-N nodes are, "/dev"
}

// NewMapper returns a Mapper using the control device (normally
// /dev/mapper/control) and the device directory devDir (normally /dev).
func NewMapper(control, devDir string) *Mapper {
	return &Mapper{sys: newDMSys(control), control: control, devDir: devDir}
}

// DefaultMapper uses /dev/mapper/control and /dev.
func DefaultMapper() *Mapper { return NewMapper("/dev/mapper/control", "/dev") }

// Open maps name (it shows as /dev/mapper/name where udev runs) as a
// dm-verity device over dataDev checked by the tree on hashDev, with the
// optional arguments keso uses (none: see Tree.Target), and returns the
// path of its block device node, /dev/dm-N, which exists on return.
func Open(name, dataDev, hashDev string, t *Tree) (devPath string, err error) {
	tg, err := t.Target(dataDev, hashDev)
	if err != nil {
		return "", fmt.Errorf("verity: open %q: %w", name, err)
	}
	return DefaultMapper().Create(name, tg)
}

// Close removes the mapping Open made.
func Close(name string) error { return DefaultMapper().Remove(name) }

func (m *Mapper) do(cmd dmCmd, name string, flags uint32, targets ...Target) (dmHeader, error) {
	buf, err := encodeDM(name, flags, targets)
	if err != nil {
		return dmHeader{}, fmt.Errorf("verity: %s %q: %w", cmd, name, err)
	}
	if err := m.sys.ioctl(cmd, buf); err != nil {
		return dmHeader{}, fmt.Errorf("verity: %s %q on %s: %w", cmd, name, m.control, err)
	}
	return decodeDM(buf), nil
}

// Create makes device name with the given table, read-only, and resumes
// it so it serves I/O. On failure nothing is left behind.
func (m *Mapper) Create(name string, targets ...Target) (devPath string, err error) {
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("verity: create: %w", err)
	}
	if len(targets) == 0 {
		return "", fmt.Errorf("verity: create %q: %w: no targets", name, ErrParams)
	}
	v, err := m.do(dmVersion, "", 0)
	if err != nil {
		return "", err
	}
	if v.Version[0] != dmVersionMajor {
		return "", fmt.Errorf("verity: %s speaks device-mapper %d.%d.%d, want %d.x", m.control,
			v.Version[0], v.Version[1], v.Version[2], dmVersionMajor)
	}
	if _, err := m.do(dmDevCreate, name, 0); err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			if rerr := m.remove(name); rerr != nil {
				err = fmt.Errorf("%w (and removing it again: %v)", err, rerr)
			}
		}
	}()
	if _, err := m.do(dmTableLoad, name, dmReadonlyFlag, targets...); err != nil {
		return "", err
	}
	h, err := m.do(dmDevSuspend, name, 0)
	if err != nil {
		return "", err
	}
	if h.Flags&dmSuspendFlag != 0 {
		return "", fmt.Errorf("verity: %s %q: still suspended after resume", dmDevSuspend, name)
	}
	devPath = fmt.Sprintf("%s/dm-%d", m.devDir, h.Minor())
	if err := m.sys.blockNode(devPath, h.Major(), h.Minor()); err != nil {
		return "", fmt.Errorf("verity: device node %s for %q (%d:%d): %w", devPath, name, h.Major(), h.Minor(), err)
	}
	return devPath, nil
}

// Remove removes device name and a device node left for it. A device
// still in use fails with EBUSY after a few tries (udev may be probing a
// new device for a moment).
func (m *Mapper) Remove(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("verity: remove: %w", err)
	}
	h, err := m.do(dmDevStatus, name, 0)
	if err != nil {
		return err
	}
	if err := m.remove(name); err != nil {
		return err
	}
	path := fmt.Sprintf("%s/dm-%d", m.devDir, h.Minor())
	if err := m.sys.removeNode(path, h.Major(), h.Minor()); err != nil {
		return fmt.Errorf("verity: remove device node %s of %q: %w", path, name, err)
	}
	return nil
}

const removeTries = 20

func (m *Mapper) remove(name string) error {
	var err error
	for i := range removeTries {
		if _, err = m.do(dmDevRemove, name, 0); !errors.Is(err, syscall.EBUSY) {
			return err
		}
		if i < removeTries-1 {
			m.sys.sleep(100 * time.Millisecond)
		}
	}
	return err
}
