package build

import (
	"os"
	"syscall"
)

// inode identifies a file by device and inode number.
func inode(p string) ([2]uint64, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return [2]uint64{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]uint64{}, false
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, true
}
