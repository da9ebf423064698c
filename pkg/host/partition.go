package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/mountinfo"
)

// FindPartition returns the device node (/dev/vda2) of the partition whose
// GPT partition name is label, reading sysfs.
func (Linux) FindPartition(label string) (string, error) {
	devs, err := ScanBlock("/")
	if err != nil {
		return "", fmt.Errorf("find partition %s: %w", label, err)
	}
	for _, d := range devs {
		if d.PartLabel == label {
			return "/dev/" + d.Name, nil
		}
	}
	return "", fmt.Errorf("find partition %s: no block device has that GPT partition name", label)
}

// BlockFile is a block device (or image file) opened for reading and writing.
type BlockFile struct {
	*os.File
	size int64
}

// Size is the device's size in bytes.
func (b *BlockFile) Size() int64 { return b.size }

// OpenBlock opens dev read-write.
func (l Linux) OpenBlock(dev string) (*BlockFile, error) {
	size, err := l.BlockSize(dev)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	return &BlockFile{File: f, size: size}, nil
}

// MountPointOf returns where dev is mounted, from /proc/self/mountinfo, or "".
func (l Linux) MountPointOf(dev string) string {
	mi, err := l.MountInfo()
	if err != nil {
		return ""
	}
	ms, _ := mountinfo.Parse(mi)
	for _, m := range ms {
		if m.Source == dev {
			return m.MountPoint
		}
	}
	return ""
}

// RereadPartitions asks the kernel to read dev's partition table again
// (BLKRRPART), after an install wrote a new one.
func (Linux) RereadPartitions(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("re-read partitions of %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		return fmt.Errorf("re-read partitions of %s: BLKRRPART: %w", dev, err)
	}
	return nil
}
