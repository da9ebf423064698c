package host

import (
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

// ReadHead reads the first n bytes of a device or image (fewer when it is
// smaller).
func (Linux) ReadHead(device string, n int) ([]byte, error) {
	f, err := os.Open(device)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", device, err)
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("read %s: %w", device, err)
	}
	return b[:m], nil
}

// wipeBytes is how much FormatExt4 zeroes at each end when asked to wipe:
// covers MBR, GPT (primary and backup), and old superblocks at the start.
const wipeBytes = 1 << 20

// FormatExt4 creates an ext4 file system over the whole device (or image
// file) with go-diskfs, labelled label. With wipe, the first and last MiB
// are zeroed first so that no old partition table or superblock remains.
// The device must not be mounted.
func (l Linux) FormatExt4(device, label string, wipe bool) error {
	size, err := l.BlockSize(device)
	if err != nil {
		return fmt.Errorf("format %s: %w", device, err)
	}
	f, err := os.OpenFile(device, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("format %s: open exclusively (is it mounted or in use?): %w", device, err)
	}
	defer f.Close()
	if wipe {
		zero := make([]byte, min(int64(wipeBytes), size))
		if _, err := f.WriteAt(zero, 0); err != nil {
			return fmt.Errorf("format %s: wipe start: %w", device, err)
		}
		if _, err := f.WriteAt(zero, size-int64(len(zero))); err != nil {
			return fmt.Errorf("format %s: wipe end: %w", device, err)
		}
	}
	if _, err := ext4.Create(file.New(f, false), size, 0, 512, &ext4.Params{VolumeName: label}); err != nil {
		return fmt.Errorf("format %s as ext4: %w", device, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("format %s: fsync: %w", device, err)
	}
	return f.Close()
}
