package host

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// AttachLoop attaches file to a free loop device, read-only, and returns the
// device path (/dev/loopN). The device stays attached (no autoclear: that
// would detach it as soon as we close it, before anything mounts it).
func (Linux) AttachLoop(file string) (string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("attach loop for %s: %w", file, err)
	}
	defer ctl.Close()
	back, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("attach loop for %s: %w", file, err)
	}
	defer back.Close()
	for try := 0; try < 8; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("attach loop for %s: LOOP_CTL_GET_FREE: %w", file, err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		if err := ensureBlockNode(dev, 7, uint32(n)); err != nil {
			return "", fmt.Errorf("attach loop for %s: %w", file, err)
		}
		ld, err := os.OpenFile(dev, os.O_RDONLY, 0)
		if err != nil {
			return "", fmt.Errorf("attach loop for %s: open %s: %w", file, dev, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY
		err = unix.IoctlLoopConfigure(int(ld.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// Kernels before 5.8 have no LOOP_CONFIGURE.
			err = unix.IoctlSetInt(int(ld.Fd()), unix.LOOP_SET_FD, int(back.Fd()))
			if err == nil {
				err = unix.IoctlLoopSetStatus64(int(ld.Fd()), &cfg.Info)
			}
		}
		ld.Close()
		if errors.Is(err, unix.EBUSY) {
			continue // someone else took it between GET_FREE and CONFIGURE
		}
		if err != nil {
			return "", fmt.Errorf("attach %s to %s: %w", file, dev, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("attach loop for %s: every free loop device was taken while we tried", file)
}

// ensureBlockNode creates the block device node dev if devtmpfs has not
// (yet) done so.
func ensureBlockNode(dev string, major, minor uint32) error {
	if _, err := os.Stat(dev); err == nil {
		return nil
	}
	if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mknod %s: %w", dev, err)
	}
	return nil
}
