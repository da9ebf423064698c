// Package esp plans and writes EFI system partitions: systemd-boot as the
// removable-media fallback loader, loader.conf and boot entries following
// the rules measured in NOTES.md (no default line, sort-key + version, boot
// counting friendly), and kernel/initrd copies. The file system is FAT16
// (go-diskfs's FAT32 fails fsck.vfat).
package esp

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat16"

	"github.com/keso-os/keso/pkg/image/tree"
)

// LoaderConf is loader/loader.conf: no menu, no editor, no auto entries, and
// no default line (a default pins a slot even when its tries are used up).
const LoaderConf = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n"

// Entry is a systemd-boot Boot Loader Specification entry.
type Entry struct {
	File    string // file name below loader/entries, e.g. "slot-a.conf"
	Title   string
	Version int // generation, monotonic per slot
	Linux   string
	Initrd  string
	Options string
}

// Render returns the entry file's content.
func (e Entry) Render() string {
	return fmt.Sprintf("title %s\nsort-key keso\nversion %d\nlinux %s\ninitrd %s\noptions %s\n",
		e.Title, e.Version, e.Linux, e.Initrd, e.Options)
}

// FallbackName is the removable-media loader path for an arch.
func FallbackName(arch string) (string, error) {
	switch arch {
	case "amd64":
		return "EFI/BOOT/BOOTX64.EFI", nil
	case "arm64":
		return "EFI/BOOT/BOOTAA64.EFI", nil
	case "armv7":
		return "EFI/BOOT/BOOTARM.EFI", nil
	}
	return "", fmt.Errorf("no UEFI loader name for arch %q", arch)
}

// Plan returns the ESP's files: the loader, loader.conf, the entries and the
// kernel/initrd copies (files maps ESP path -> host file).
func Plan(arch, loader string, entries []Entry, files map[string]string) (tree.Tree, error) {
	name, err := FallbackName(arch)
	if err != nil {
		return nil, err
	}
	t := tree.Tree{}
	t.Copy(name, 0o644, loader)
	t.Data("loader/loader.conf", 0o644, []byte(LoaderConf))
	t.Dir("loader/entries", 0o755)
	for _, e := range entries {
		t.Data("loader/entries/"+e.File, 0o644, []byte(e.Render()))
	}
	for p, src := range files {
		t.Copy(p, 0o644, src)
	}
	return t, nil
}

// SizeFor returns a FAT16 image size (bytes, whole MiB) that holds t with room
// for the FAT, directories and cluster slack.
func SizeFor(t tree.Tree) (int64, error) {
	n, err := t.Size()
	if err != nil {
		return 0, err
	}
	const mib = 1 << 20
	size := n + n/8 + int64(len(t))*32*1024 + 4*mib
	size = (size + mib - 1) / mib * mib
	if size < 16*mib {
		size = 16 * mib
	}
	return size, nil
}

// Write creates a FAT16 file system of size bytes at offset start of b,
// labelled label, and copies the tree into it. Every time stamp is epoch:
// go-diskfs reads SOURCE_DATE_EPOCH from the environment, so Write sets it.
func Write(b backend.Storage, start, size int64, label string, t tree.Tree, epoch int64) error {
	if err := os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch, 10)); err != nil {
		return fmt.Errorf("FAT16 %s: %w", label, err)
	}
	fs, err := fat16.Create(b, size, start, 512, label, true)
	if err != nil {
		return fmt.Errorf("create FAT16 %s (%d bytes at %d): %w", label, size, start, err)
	}
	for _, p := range t.Paths() {
		n := t[p]
		switch n.Kind {
		case tree.Dir:
			if err := fs.Mkdir(p); err != nil {
				return fmt.Errorf("FAT16 %s: mkdir %s: %w", label, p, err)
			}
		case tree.File:
			if err := copyIn(fs, p, n); err != nil {
				return fmt.Errorf("FAT16 %s: write %s: %w", label, p, err)
			}
		default:
			return fmt.Errorf("FAT16 %s: %s: only files and folders fit on FAT", label, p)
		}
	}
	if err := freeRootCluster(b, start); err != nil {
		return fmt.Errorf("FAT16 %s: %w", label, err)
	}
	return nil
}

// freeRootCluster works around go-diskfs v1.9.4 marking data cluster 2 as
// used for the FAT16 root directory (which lives in its own fixed region, not
// in a cluster): fsck.vfat reports it as an unused cluster to reclaim. Files
// are allocated from cluster 3 on, so entry 2 is set free in every FAT copy.
func freeRootCluster(b backend.Storage, start int64) error {
	bpb := make([]byte, 512)
	if _, err := b.ReadAt(bpb, start); err != nil {
		return fmt.Errorf("read boot sector: %w", err)
	}
	bytesPerSector := int64(binary.LittleEndian.Uint16(bpb[11:]))
	reserved := int64(binary.LittleEndian.Uint16(bpb[14:]))
	fats := int64(bpb[16])
	perFAT := int64(binary.LittleEndian.Uint16(bpb[22:]))
	if bytesPerSector != 512 || fats < 1 || perFAT == 0 {
		return fmt.Errorf("unexpected FAT16 boot sector (bytes/sector %d, FATs %d, sectors/FAT %d)", bytesPerSector, fats, perFAT)
	}
	w, err := b.Writable()
	if err != nil {
		return err
	}
	// is cluster 2 referenced by any directory entry? go-diskfs starts files at 3.
	for i := int64(0); i < fats; i++ {
		off := start + (reserved+i*perFAT)*bytesPerSector + 2*2
		if _, err := w.WriteAt([]byte{0, 0}, off); err != nil {
			return fmt.Errorf("free cluster 2 in FAT %d: %w", i, err)
		}
	}
	return nil
}

func copyIn(fs *fat16.FileSystem, p string, n *tree.Node) error {
	f, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader
	if n.Data != nil {
		r = strings.NewReader(string(n.Data))
	} else {
		src, err := os.Open(n.Source)
		if err != nil {
			return err
		}
		defer src.Close()
		r = src
	}
	_, err = io.Copy(f, r)
	return err
}

// DiskPartStart is where WriteDisk's one partition starts.
const DiskPartStart = 1 << 20

// WriteDisk writes a disk image of size bytes at path with an MBR holding
// one bootable FAT16 partition of type partType (0x0e: FAT16 LBA, as a
// Pi's boot ROM wants; 0xef: an EFI system partition) from 1 MiB on,
// filled with t. Tests of boot loaders boot it in QEMU.
func WriteDisk(path string, size int64, partType byte, label string, t tree.Tree, epoch int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("boot disk %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("boot disk %s: %w", path, err)
	}
	mbr := make([]byte, 512)
	e := mbr[446:]
	e[0] = 0x80 // bootable
	e[4] = partType
	binary.LittleEndian.PutUint32(e[8:], DiskPartStart/512)
	binary.LittleEndian.PutUint32(e[12:], uint32((size-DiskPartStart)/512))
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("boot disk %s: %w", path, err)
	}
	if err := Write(file.New(f, false), DiskPartStart, size-DiskPartStart, label, t, epoch); err != nil {
		return fmt.Errorf("boot disk %s: %w", path, err)
	}
	return f.Close()
}

// ReadDiskFile reads file p from the FAT partition of a disk WriteDisk wrote.
func ReadDiskFile(path, p string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("boot disk %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("boot disk %s: %w", path, err)
	}
	fs, err := fat16.Read(file.New(f, true), fi.Size()-DiskPartStart, DiskPartStart, 512)
	if err != nil {
		return nil, fmt.Errorf("boot disk %s: %w", path, err)
	}
	h, err := fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("boot disk %s: open %s: %w", path, p, err)
	}
	b, err := io.ReadAll(h)
	if err != nil {
		return nil, fmt.Errorf("boot disk %s: read %s: %w", path, p, err)
	}
	return b, nil
}
