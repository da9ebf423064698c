package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BlockSize returns the size in bytes of the block device (or regular file)
// at path.
func (Linux) BlockSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	var size uint64
	if err := ioctlPtr(f.Fd(), unix.BLKGETSIZE64, &size); err != nil {
		return 0, fmt.Errorf("size of %s: BLKGETSIZE64: %w", path, err)
	}
	return int64(size), nil
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

// GrowExt4 grows the mounted ext4 file system at mountpoint so that it
// covers deviceBytes. It returns the block counts before and after; when the
// file system already fills the device it does nothing.
func (l Linux) GrowExt4(mountpoint string, deviceBytes int64) (before, after uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(mountpoint, &st); err != nil {
		return 0, 0, fmt.Errorf("grow ext4 on %s: statfs: %w", mountpoint, err)
	}
	bs := uint64(st.Bsize)
	if bs == 0 {
		return 0, 0, fmt.Errorf("grow ext4 on %s: statfs reports block size 0", mountpoint)
	}
	// The kernel compares the target with the superblock's block count:
	// equal is a successful no-op, smaller is EINVAL (ext4 cannot shrink).
	target := uint64(deviceBytes) / bs
	before = st.Blocks
	f, err := os.Open(mountpoint)
	if err != nil {
		return 0, 0, fmt.Errorf("grow ext4 on %s: %w", mountpoint, err)
	}
	defer f.Close()
	if err := ioctlPtr(f.Fd(), ext4IocResizeFS, &target); err != nil {
		return before, before, fmt.Errorf("grow ext4 on %s to %d blocks of %d bytes: EXT4_IOC_RESIZE_FS: %w", mountpoint, target, bs, err)
	}
	if err := unix.Statfs(mountpoint, &st); err != nil {
		return before, 0, fmt.Errorf("grow ext4 on %s: statfs after resize: %w", mountpoint, err)
	}
	return before, st.Blocks, nil
}

// Patch is bytes to write at a byte offset of a device.
type Patch struct {
	Offset int64
	Data   []byte
}

// PatchDevice writes patches to the device (or image file) at path, in
// order, and syncs it: how the initrd writes a grown partition table.
func (Linux) PatchDevice(path string, patches []Patch) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range patches {
		if _, err := f.WriteAt(p.Data, p.Offset); err != nil {
			return fmt.Errorf("write %s at %d: %w", path, p.Offset, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	return nil
}
