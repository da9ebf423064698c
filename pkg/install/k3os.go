package install

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/raw"
)

// A k3OS disk, as k3OS's installer lays it out (its install.sh): on UEFI a
// GPT with a FAT32 ESP labelled K3OS_GRUB (0–50 MB) and an ext4 labelled
// K3OS_STATE (50–750 MB, grown to the end of the disk by k3OS's first boot
// when its growpart flag is set); on BIOS an MBR with one ext4 K3OS_STATE.
// The labels are file-system labels (mkfs -L / -n); the GPT names are
// parted's "primary".
const (
	K3OSStateLabel = "K3OS_STATE"
	K3OSGrubLabel  = "K3OS_GRUB"
)

// DiskPart is a partition of the target disk and what it holds.
type DiskPart struct {
	Index      int
	Start, End uint64 // inclusive, 512-byte sectors
	Type       gpt.Type
	Name       string         // the GPT partition name (k3OS's are "primary", keso's its labels)
	Probe      blockdev.Probe // what blockdev.Detect found at its start
}

// K3OSDisk is a k3OS installation found on a disk.
type K3OSDisk struct {
	State, Grub DiskPart
}

// FindK3OS reports whether the partitions of a disk whose partition table
// is table ("gpt" or "mbr") hold a k3OS installation. A k3OS disk keso
// cannot install beside (a BIOS one, with an MBR) is an error that says
// why, so that the caller never formats it as an ordinary disk.
func FindK3OS(table string, parts []DiskPart) (K3OSDisk, bool, error) {
	var k K3OSDisk
	found, grub := false, false
	for _, p := range parts {
		switch {
		case p.Probe.IsExt() && p.Probe.Label == K3OSStateLabel:
			k.State, found = p, true
		case p.Probe.Type == "vfat" && p.Probe.Label == K3OSGrubLabel:
			k.Grub, grub = p, true
		}
	}
	if !found {
		return k, false, nil
	}
	if table != "gpt" || !grub {
		return k, true, fmt.Errorf("this is a BIOS k3OS disk (%s partition table, no %s ESP): keso installs beside k3OS only on a UEFI k3OS disk (GPT); "+
			"back up K3OS_STATE (k3os/system/config.yaml, k3os/data/var/lib/rancher, k3os/data/home) and install keso on an empty disk; nothing was written", table, K3OSGrubLabel)
	}
	return k, true, nil
}

// BesideLayout is keso's layout in the free space of a k3OS disk: the
// disk's partitions as they are (Keep), keso's four after them (New).
type BesideLayout struct {
	Keep      []DiskPart
	New       []raw.Part
	DiskBytes int64
}

// PlanBeside lays keso's partitions (KESO_EFI, two root slots, KESO_STATE
// taking the rest) out 1 MiB aligned in the free space after the last
// partition of a k3OS disk, numbered after the existing ones, leaving
// k3OS's partitions untouched. A disk whose free space cannot hold them is
// refused with what is needed.
//
// keso's own partitions from an earlier install beside k3OS that stopped
// before its switch (KESO_EFI not yet the ESP: a power cut, a failed copy)
// are planned over, so that the install can simply be run again. Once
// KESO_EFI is the ESP the disk runs keso, and a new install beside k3OS,
// which would copy k3OS's older state over keso's, is refused.
func PlanBeside(arch string, parts []DiskPart, diskBytes, squashfsBytes int64) (BesideLayout, error) {
	const secPerMiB = mib / 512
	parts, err := withoutUnfinished(parts)
	if err != nil {
		return BesideLayout{}, err
	}
	var last uint64
	index := 0
	for _, p := range parts {
		last = max(last, p.End)
		index = max(index, p.Index)
	}
	start := (last/secPerMiB + 1) * secPerMiB  // the first whole MiB after the last partition
	end := uint64(diskBytes/mib-1) * secPerMiB // 1 MiB tail for the backup GPT
	root := rootMiB(squashfsBytes)
	need := uint64(EFIMiB+2*root+MinStateMiB) * secPerMiB
	if end < start || end-start < need {
		free := int64(0)
		if end > start {
			free = int64(end-start) / secPerMiB
		}
		return BesideLayout{}, fmt.Errorf("the k3OS partitions leave %d MiB free after them; keso needs %d MiB beside them (%d MiB EFI, two %d MiB root slots, %d MiB state): "+
			"shrink %s (resize2fs, then the partition) on another machine or use a bigger disk; nothing was written",
			free, need/secPerMiB, EFIMiB, root, MinStateMiB, K3OSStateLabel)
	}
	l := BesideLayout{Keep: parts, DiskBytes: diskBytes}
	next := start
	add := func(label string, t gpt.Type, sectors uint64) {
		index++
		l.New = append(l.New, raw.Part{Index: index, Label: label, Type: t, Start: next, End: next + sectors - 1})
		next += sectors
	}
	add(raw.LabelEFI, gpt.EFISystemPartition, EFIMiB*secPerMiB)
	add(raw.LabelRootA, raw.RootType(arch), uint64(root)*secPerMiB)
	add(raw.LabelRootB, raw.RootType(arch), uint64(root)*secPerMiB)
	add(raw.LabelState, gpt.LinuxFilesystem, end-next)
	return l, nil
}

// withoutUnfinished drops keso's partitions that an unfinished install
// beside k3OS left (PlanBeside), or refuses a disk where keso already
// boots beside k3OS.
func withoutUnfinished(parts []DiskPart) ([]DiskPart, error) {
	var keep []DiskPart
	for _, p := range parts {
		switch p.Name {
		case raw.LabelEFI, raw.LabelRootA, raw.LabelRootB, raw.LabelState:
			if p.Name == raw.LabelEFI && p.Type == gpt.EFISystemPartition {
				return nil, fmt.Errorf("keso already boots from this disk beside k3OS (partition %d, %s, is the ESP): installing beside k3OS again would copy k3OS's older state over keso's; "+
					"use keso upgrade, or to start over back up what you need and clear the partition table (sgdisk --zap-all from another system); nothing was written", p.Index, raw.LabelEFI)
			}
			continue
		}
		keep = append(keep, p)
	}
	return keep, nil
}

// K3OSMove is one thing the install copies from K3OS_STATE to KESO_STATE.
type K3OSMove struct {
	From, To string // paths on the two file systems
	Why      string
}

// K3OSMoves are what a k3OS node keeps when keso is installed beside it
// (docs/install.md): k3OS persists k3os/data as the root of its writable
// directories, keeps /etc/ssh and /etc/rancher/node under
// var/lib/rancher/k3os, and its config in k3os/system. On KESO_STATE the
// writable directories are var, home, root and opt, /etc's changes are in
// etc-overlay/upper (initrd.LayerPlan), the SSH host keys in var/lib/keso/ssh.
var K3OSMoves = []K3OSMove{
	{"k3os/system/config.yaml", "keso/config.yaml", "the node's config"},
	{"k3os/data/var/lib/rancher", "var/lib/rancher", "k3s's state: the node's certificates and, on a server, the cluster's datastore and token"},
	{"k3os/data/var/lib/rancher/k3os/node/password", "etc-overlay/upper/rancher/node/password", "the node password the server checks when the node joins again"},
	{"k3os/data/var/lib/rancher/k3os/hostname", "etc-overlay/upper/hostname", "the name k3OS chose at its first boot, when the config names none"},
	{"k3os/data/var/lib/rancher/k3os/ssh/ssh_host_ed25519_key", "var/lib/keso/ssh/ssh_host_ed25519_key", "the SSH host key clients know (OpenSSH's format, which keso's server reads)"},
	{"k3os/data/var/lib/rancher/k3os/ssh/ssh_host_ed25519_key.pub", "var/lib/keso/ssh/ssh_host_ed25519_key.pub", "its public half"},
	{"k3os/data/var/lib/rancher/k3os/ssh/ssh_host_rsa_key", "var/lib/keso/ssh/ssh_host_rsa_key", "the RSA host key, for older clients"},
	{"k3os/data/var/lib/rancher/k3os/ssh/ssh_host_rsa_key.pub", "var/lib/keso/ssh/ssh_host_rsa_key.pub", "its public half"},
	{"k3os/data/home", "home", "rancher's home"},
	{"k3os/data/root", "root", "root's home"},
	{"k3os/data/opt", "opt", "the user's own files"},
}

// ReadParts reads a disk's partition table ("gpt", "mbr" or "" for none)
// and what each partition holds (blockdev.Detect on its first bytes), for
// FindK3OS and PlanBeside.
func ReadParts(disk *os.File) (string, []DiskPart, error) {
	head := make([]byte, 512)
	if _, err := disk.ReadAt(head, 0); err != nil {
		return "", nil, fmt.Errorf("read the partition table: %w", err)
	}
	probe := func(p *DiskPart) error {
		b := make([]byte, blockdev.HeadSize)
		n, err := disk.ReadAt(b, int64(p.Start)*512)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read partition %d: %w", p.Index, err)
		}
		p.Probe = blockdev.Detect(b[:n])
		return nil
	}
	var parts []DiskPart
	if table, err := gpt.Read(file.New(disk, true), 512, 512); err == nil {
		for _, gp := range table.Partitions {
			if gp.Type == gpt.Unused {
				continue
			}
			p := DiskPart{Index: gp.Index, Start: gp.Start, End: gp.End, Type: gp.Type, Name: gp.Name}
			if err := probe(&p); err != nil {
				return "", nil, err
			}
			parts = append(parts, p)
		}
		return "gpt", parts, nil
	}
	if head[510] != 0x55 || head[511] != 0xAA {
		return "", nil, nil
	}
	for i := range 4 {
		e := head[446+16*i:][:16]
		start, n := binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		if e[4] == 0 || n == 0 {
			continue
		}
		p := DiskPart{Index: i + 1, Start: uint64(start), End: uint64(start) + uint64(n) - 1}
		if err := probe(&p); err != nil {
			return "", nil, err
		}
		parts = append(parts, p)
	}
	return "mbr", parts, nil
}

// Moved is what CopyFromK3OS did with one K3OSMove.
type Moved struct {
	K3OSMove
	Bytes   int64
	Missing bool // the k3OS disk has no such path: nothing to keep
}

// CopyFromK3OS copies K3OSMoves from the mounted K3OS_STATE (k3os, which
// it only reads) to the mounted KESO_STATE (keso) and checks each copy
// against its source by content hashes. The first failure stops it; the
// k3OS side is never written, so a failed copy loses nothing.
func CopyFromK3OS(k3os, keso host.FS) ([]Moved, error) {
	var done []Moved
	for _, m := range K3OSMoves {
		mv := Moved{K3OSMove: m}
		n, err := keso.CopyTree(k3os, m.From, m.To)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := k3os.Stat(m.From); errors.Is(serr, fs.ErrNotExist) {
				mv.Missing = true
				done = append(done, mv)
				continue
			}
		}
		if err != nil {
			return done, fmt.Errorf("keep %s (%s): %w", m.From, m.Why, err)
		}
		mv.Bytes = n
		want, err := k3os.TreeSums(m.From)
		if err != nil {
			return done, fmt.Errorf("check %s: %w", m.From, err)
		}
		got, err := keso.TreeSums(m.To)
		if err != nil {
			return done, fmt.Errorf("check %s: %w", m.To, err)
		}
		for p, sum := range want {
			if got[p] != sum {
				return done, fmt.Errorf("check %s: %s differs from k3OS's after the copy", m.To, filepath.Join(m.From, p))
			}
		}
		done = append(done, mv)
	}
	return done, nil
}
