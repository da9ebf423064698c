package verity

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linuxDM is dmSys on Linux: ioctls on the control device, mknod and
// unlink for the device nodes.
type linuxDM struct{ control string }

func newDMSys(control string) dmSys { return linuxDM{control: control} }

func (l linuxDM) ioctl(cmd dmCmd, buf []byte) error {
	fd, err := unix.Open(l.control, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: l.control, Err: err}
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd.ioctlNumber()), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	if decodeDM(buf).Flags&dmBufferFullFlag != 0 {
		return fmt.Errorf("answer larger than %d bytes", len(buf))
	}
	return nil
}

// isNode says whether path is a block device node for major:minor.
func isNode(path string, major, minor uint32) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == unix.Mkdev(major, minor), nil
}

func (linuxDM) blockNode(path string, major, minor uint32) error {
	ok, err := isNode(path, major, minor)
	switch {
	case ok:
		return nil
	case err == nil:
		// A stale node (a static /dev) for another device: replace it.
		if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlink", Path: path, Err: err}
		}
	case !errors.Is(err, unix.ENOENT):
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	err = unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor)))
	if errors.Is(err, unix.EEXIST) {
		// devtmpfs or udev made it meanwhile.
		if ok, _ := isNode(path, major, minor); ok {
			return nil
		}
	}
	if err != nil {
		return &os.PathError{Op: "mknod", Path: path, Err: err}
	}
	return nil
}

func (linuxDM) removeNode(path string, major, minor uint32) error {
	if ok, _ := isNode(path, major, minor); !ok {
		return nil // devtmpfs removed it, or it was never ours
	}
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

func (linuxDM) sleep(d time.Duration) { time.Sleep(d) }
