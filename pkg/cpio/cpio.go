// Package cpio writes deterministic newc ("070701") cpio archives, the format
// the Linux kernel unpacks as an initramfs. Entries are written in the order
// given; inode numbers count up from 1 and every time is the one given.
package cpio

import (
	"fmt"
	"io"
	"strings"
)

// Type bits of the mode field.
const (
	TypeDir     = 0o040000
	TypeReg     = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
)

// Entry is one archive member. Name is relative ("init", "dev/console").
type Entry struct {
	Name     string
	Mode     uint32 // type bits | permissions
	Data     []byte // file content, or the link target for symlinks
	RMajor   uint32 // device numbers for TypeChar
	RMinor   uint32
	UID, GID uint32
}

// Writer writes entries to W.
type Writer struct {
	W     io.Writer
	MTime int64
	ino   uint32
	off   int64
}

func (w *Writer) write(b []byte) error {
	n, err := w.W.Write(b)
	w.off += int64(n)
	return err
}

func (w *Writer) pad() error {
	if r := w.off % 4; r != 0 {
		return w.write(make([]byte, 4-r))
	}
	return nil
}

func (w *Writer) header(name string, mode, nlink uint32, size int, rmaj, rmin, uid, gid uint32) error {
	w.ino++
	ino := w.ino
	if name == "TRAILER!!!" {
		ino = 0
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, uid, gid, nlink, uint32(w.MTime), size, 0, 0, rmaj, rmin, len(name)+1, 0)
	if err := w.write([]byte(h)); err != nil {
		return err
	}
	if err := w.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return w.pad()
}

// Add writes one entry.
func (w *Writer) Add(e Entry) error {
	name := strings.TrimPrefix(e.Name, "/")
	if name == "" {
		return fmt.Errorf("cpio: empty name")
	}
	nlink := uint32(1)
	if e.Mode&0o170000 == TypeDir {
		nlink = 2
	}
	if err := w.header(name, e.Mode, nlink, len(e.Data), e.RMajor, e.RMinor, e.UID, e.GID); err != nil {
		return fmt.Errorf("cpio: write %s: %w", name, err)
	}
	if err := w.write(e.Data); err != nil {
		return fmt.Errorf("cpio: write %s: %w", name, err)
	}
	return w.pad()
}

// Close writes the trailer.
func (w *Writer) Close() error {
	if err := w.header("TRAILER!!!", 0, 1, 0, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("cpio: write trailer: %w", err)
	}
	return nil
}
