package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Hostname returns the running kernel's host name (uname nodename).
func (Linux) Hostname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Nodename[:]), nil
}

// SetHostname sets the running kernel's host name with sethostname(2).
func (Linux) SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %q: %w", name, err)
	}
	return nil
}

// WriteInPlace writes data to the existing file p in one write, without
// creating, truncating through a temporary file or renaming: what /proc/sys
// and /sys attributes need.
func (f FS) WriteInPlace(p string, data []byte) error {
	fd, err := os.OpenFile(f.Path(p), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := fd.Write(data); err != nil {
		fd.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := fd.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
