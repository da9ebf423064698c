package initrd

import "golang.org/x/sys/unix"

var errBusy error = unix.EBUSY

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
