//go:build !linux

package verity

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("device-mapper needs Linux")

// otherDM is dmSys where there is no device-mapper: Build, Verify and
// Table work everywhere (keso-build runs on workstations), mapping does not.
type otherDM struct{}

func newDMSys(string) dmSys { return otherDM{} }

func (otherDM) ioctl(dmCmd, []byte) error               { return errNotLinux }
func (otherDM) blockNode(string, uint32, uint32) error  { return errNotLinux }
func (otherDM) removeNode(string, uint32, uint32) error { return errNotLinux }
func (otherDM) sleep(time.Duration)                     {}
