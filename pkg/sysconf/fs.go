package sysconf

import (
	"errors"
	"io/fs"
)

// FS is the root-prefixed file system the phases use; host.FS implements it.
type FS interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
	// WriteInPlace writes an existing file without replacing it, as
	// /proc/sys files need.
	WriteInPlace(p string, data []byte) error
	MkdirAll(p string, mode fs.FileMode) error
	Chown(p string, uid, gid int) error
	Chmod(p string, mode fs.FileMode) error
	Stat(p string) (fs.FileInfo, error)
	// Path is where a node path lives on the host (for finit_module).
	Path(p string) string
}

func readOptional(fsys FS, p string) ([]byte, error) {
	b, err := fsys.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
