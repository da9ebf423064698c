package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mount flags re-exported so that consumers need not import x/sys/unix.
const (
	MountReadOnly = unix.MS_RDONLY
	MountNoSuid   = unix.MS_NOSUID
	MountNoDev    = unix.MS_NODEV
	MountNoExec   = unix.MS_NOEXEC
	MountBind     = unix.MS_BIND
	MountMove     = unix.MS_MOVE
)

// Mount mounts source on target, creating target (and its parents) first.
func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s on %s: create mount point: %w", source, target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", source, fstype, target, err)
	}
	return nil
}

// Unmount detaches the file system mounted on target.
func (Linux) Unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}
