package initrd

import (
	"errors"
	"io"
	"os"
	"strings"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/host"
)

// FindPartLabel returns the device with the given GPT partition label.
func FindPartLabel(devs []host.BlockDev, label string) (host.BlockDev, bool) {
	for _, d := range devs {
		if d.PartLabel == label {
			return d, true
		}
	}
	return host.BlockDev{}, false
}

// ISO 9660: the primary volume descriptor is in the 2048-byte sector 16; it
// starts with type 1 and "CD001", and the volume identifier is 32 bytes at
// offset 40, padded with spaces.
// ISOLabel reads the ISO 9660 volume label of the device or image at path
// (blockdev.Detect). ok is false when it holds no ISO 9660 file system.
func ISOLabel(path string) (label string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	head := make([]byte, blockdev.HeadSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, err
	}
	p := blockdev.Detect(head[:n])
	return p.Label, p.Type == "iso9660", nil
}

// Survey describes what a search saw, for the one-line failure message.
type Survey []string

func (s Survey) String() string {
	if len(s) == 0 {
		return "no block devices"
	}
	return strings.Join(s, ", ")
}

// describe is one device in a Survey.
func describe(d host.BlockDev, iso string) string {
	var parts []string
	if d.PartLabel != "" {
		parts = append(parts, "partlabel "+d.PartLabel)
	}
	if iso != "" {
		parts = append(parts, iso)
	}
	if len(parts) == 0 {
		return d.Name
	}
	return d.Name + " (" + strings.Join(parts, "; ") + ")"
}
