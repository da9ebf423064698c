package check

import (
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/mountinfo"
)

// Mount is one line of /proc/self/mountinfo.
type Mount = mountinfo.Mount

// ReadMountInfo parses /proc/self/mountinfo under fsys.
func ReadMountInfo(fsys host.FS) ([]Mount, error) {
	b, err := fsys.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return mountinfo.Parse(string(b))
}

// ParseMountInfo parses the text of a mountinfo file.
func ParseMountInfo(s string) ([]Mount, error) { return mountinfo.Parse(s) }

// Containing returns the mount that holds path.
func Containing(mounts []Mount, path string) (Mount, bool) { return mountinfo.Containing(mounts, path) }
