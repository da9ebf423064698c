// Package raw plans and writes keso's raw disk image: GPT with KESO_EFI
// (FAT16: systemd-boot, loader entries, keso/a/{vmlinuz,initrd}),
// KESO_ROOT_A (the squashfs written raw), KESO_ROOT_B (empty, same size) and
// KESO_STATE (a small ext4, grown on first boot). No root, no loop devices.
package raw

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/tree"
)

const (
	mib    = 1 << 20
	sector = 512
)

// Partition labels (GPT partition names), part of the boot contract
// (pkg/bootloader names them).
const (
	LabelEFI   = bootloader.LabelEFI
	LabelRootA = bootloader.LabelRootA
	LabelRootB = bootloader.LabelRootB
	LabelState = bootloader.LabelState
)

// RootType is the discoverable-partitions root type GUID for an arch.
func RootType(arch string) gpt.Type {
	switch arch {
	case "arm64":
		return gpt.Type("B921B045-1DF0-41C3-AF44-4C6F280D3FAE")
	case "armv7":
		return gpt.Type("69DAD710-2CE4-4E3C-B16C-21A1D49ABED3")
	}
	return gpt.LinuxRootX86_64
}

// Layout is the partition plan (sizes in MiB).
type Layout struct {
	EFIMiB, RootMiB, StateMiB int
}

// Part is one planned partition (sectors).
type Part struct {
	Index      int
	Label      string
	Type       gpt.Type
	Start, End uint64 // inclusive, 512-byte sectors
}

// Bytes is the partition size.
func (p Part) Bytes() int64 { return int64(p.End-p.Start+1) * sector }

// GPT is the partition's GPT entry, named by its label, with a GUID derived
// from seed and the label (GUID).
func (p Part) GPT(seed string) *gpt.Partition {
	return &gpt.Partition{Index: p.Index, Start: p.Start, End: p.End, Type: p.Type, Name: p.Label, GUID: GUID(seed + "/" + p.Label)}
}

// Plan lays the partitions out 1 MiB aligned and returns them with the image size.
func Plan(arch string, l Layout) ([]Part, int64) {
	var parts []Part
	next := uint64(mib / sector)
	add := func(label string, t gpt.Type, sizeMiB int) {
		n := uint64(sizeMiB) * mib / sector
		parts = append(parts, Part{Index: len(parts) + 1, Label: label, Type: t, Start: next, End: next + n - 1})
		next += n
	}
	add(LabelEFI, gpt.EFISystemPartition, l.EFIMiB)
	add(LabelRootA, RootType(arch), l.RootMiB)
	add(LabelRootB, RootType(arch), l.RootMiB)
	add(LabelState, gpt.LinuxFilesystem, l.StateMiB)
	return parts, int64(next)*sector + mib // 1 MiB tail for the backup GPT
}

// GUID derives a stable UUID (version 4 layout) from a seed, so that the
// same inputs give the same disk.
func GUID(seed string) string {
	s := sha256.Sum256([]byte(seed))
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// Options for Write.
type Options struct {
	Arch     string
	Seed     string // GUID seed (arch + version + root sha256)
	Layout   Layout
	ESP      tree.Tree
	Squashfs string // host path of the root squashfs
	Epoch    int64
	TmpDir   string
}

// Write creates the raw disk image at out.
func Write(ctx context.Context, out string, o Options) error {
	parts, size := Plan(o.Arch, o.Layout)
	fi, err := os.Stat(o.Squashfs)
	if err != nil {
		return fmt.Errorf("raw disk: %w", err)
	}
	if fi.Size() > parts[1].Bytes() {
		return fmt.Errorf("raw disk: root squashfs is %d MiB, larger than the %d MiB root slot: raise root_size_mib in the profile",
			fi.Size()/mib+1, o.Layout.RootMiB)
	}
	os.Remove(out)
	b, err := file.CreateFromPath(out, size)
	if err != nil {
		return fmt.Errorf("raw disk: %w", err)
	}
	defer b.Close()
	table := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: GUID(o.Seed + "/disk")}
	for _, p := range parts {
		table.Partitions = append(table.Partitions, p.GPT(o.Seed))
	}
	w, err := b.Writable()
	if err != nil {
		return fmt.Errorf("raw disk %s: %w", out, err)
	}
	if err := table.Write(w, size); err != nil {
		return fmt.Errorf("raw disk %s: write GPT: %w", out, err)
	}
	if err := esp.Write(b, int64(parts[0].Start)*sector, parts[0].Bytes(), LabelEFI, o.ESP, o.Epoch); err != nil {
		return fmt.Errorf("raw disk %s: %w", out, err)
	}
	if err := CopyFileAt(w, o.Squashfs, int64(parts[1].Start)*sector); err != nil {
		return fmt.Errorf("raw disk %s: write %s: %w", out, LabelRootA, err)
	}
	ext, err := MakeExt4(ctx, o.TmpDir, parts[3].Bytes(), LabelState, GUID(o.Seed+"/ext4"), o.Epoch)
	if err != nil {
		return fmt.Errorf("raw disk %s: %w", out, err)
	}
	defer os.Remove(ext)
	if err := CopyFileAt(w, ext, int64(parts[3].Start)*sector); err != nil {
		return fmt.Errorf("raw disk %s: write %s: %w", out, LabelState, err)
	}
	return nil
}

// CopyFileAt writes the file src into w at offset off (a partition of a
// disk image or of a disk).
func CopyFileAt(w io.WriterAt, src string, off int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.NewOffsetWriter(w, off), f)
	return err
}

// CheckTools reports whether mke2fs (for KESO_STATE) is available.
func CheckTools() error {
	if _, err := exec.LookPath("mke2fs"); err != nil {
		return fmt.Errorf("host tool mke2fs not found: install e2fsprogs (sudo apt-get install e2fsprogs)")
	}
	return nil
}

// MakeExt4 writes an empty, reproducible ext4 image of size bytes with
// mke2fs (e2fsprogs): fixed UUID and hash seed, fixed times, root-owned.
func MakeExt4(ctx context.Context, dir string, size int64, label, uuid string, epoch int64) (string, error) {
	if err := CheckTools(); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "state.ext4")
	os.Remove(out)
	cmd := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-U", uuid,
		"-E", "hash_seed="+uuid+",root_owner=0:0,lazy_itable_init=0,nodiscard",
		"-b", "4096", "-m", "0", out, strconv.FormatInt(size/1024, 10)+"k")
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(epoch, 10), "MKE2FS_DEVICE_SECTSIZE=512")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mke2fs %s: %w\n%s", out, err, b)
	}
	return out, nil
}
