package host

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blkpg is BLKPG, _IO(0x12, 105).
const blkpg = 0x1269

// ResizePartition tells the kernel that partition number partno of disk
// now spans length bytes from start (both in bytes), after its partition
// table was rewritten. The partition must not be in use.
func (Linux) ResizePartition(disk string, partno int, start, length int64) error {
	f, err := os.OpenFile(disk, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("resize partition %d of %s: %w", partno, disk, err)
	}
	defer f.Close()
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(partno)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpg, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("resize partition %d of %s to %d bytes: BLKPG: %w", partno, disk, length, errno)
	}
	return nil
}
