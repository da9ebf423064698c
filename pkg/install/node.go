package install

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
)

// Where a running keso finds what it installs (written by keso-build into
// the root file system).
const (
	// LiveSquashfs is the live ISO's root image, as the initrd mounted it.
	LiveSquashfs = "/run/keso/media/keso/root.squashfs"
	// NetbootSquashfs is a netbooted node's root image.
	NetbootSquashfs = "/run/keso/rootfs.squashfs"
	// Dir holds loader.efi, state.ext4, arch and cmdline, and bootloader
	// ("grub") when loader.efi is GRUB's core image.
	Dir = "/usr/share/keso/install"
)

// NodeHost is what an install on a running node needs; host.Linux has it.
type NodeHost interface {
	OpenBlock(dev string) (*host.BlockFile, error)
	RereadPartitions(dev string) error
	FindPartition(label string) (string, error)
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
	GrowExt4(mountpoint string, deviceBytes int64) (before, after uint64, err error)
}

// Result says what Node did.
type Result struct {
	DiskBytes int64
	State     string // the state partition's device
	Took      time.Duration
	// K3OS is set when keso was installed beside a k3OS installation
	// (PlanBeside, WriteBeside): what was kept from it, and where its state
	// partition stays, readable.
	K3OS      bool
	K3OSState string
	Kept      []Moved
}

// Node installs the running system onto device: the root image it booted
// from (live ISO or netboot), its kernel and initrd, the loader and state
// image the build shipped, and config saved as /keso/config.yaml.
func Node(h NodeHost, root host.FS, device string, config []byte) (Result, error) {
	var res Result
	arch, err := root.ReadFile(Dir + "/arch")
	if err != nil {
		return res, fmt.Errorf("this image carries no installer files (%s): %w", Dir, err)
	}
	opts, _ := root.ReadFile(Dir + "/cmdline")
	squashfs := ""
	for _, p := range []string{LiveSquashfs, NetbootSquashfs} {
		if _, err := root.Stat(p); err == nil {
			squashfs = p
			break
		}
	}
	if squashfs == "" {
		return res, fmt.Errorf("no root image to install: boot the live ISO or netboot image (looked for %s and %s)", LiveSquashfs, NetbootSquashfs)
	}
	sq, err := root.Stat(squashfs)
	if err != nil {
		return res, err
	}
	disk, err := h.OpenBlock(device)
	if err != nil {
		return res, err
	}
	defer disk.Close()
	parts, k, isK3OS, err := readDisk(disk.File, device)
	if err != nil {
		return res, err
	}
	seed := make([]byte, 16)
	rand.Read(seed)
	loader, _ := root.ReadFile(Dir + "/bootloader") // "grub" on armv7; absent: systemd-boot
	in := Inputs{
		Grub: strings.TrimSpace(string(loader)) == "grub",
		Arch: strings.TrimSpace(string(arch)), Squashfs: root.Path(squashfs), Kernel: root.Path("/boot/vmlinuz"),
		Initrd: root.Path("/boot/initrd"), Loader: root.Path(Dir + "/loader.efi"), StateImage: root.Path(Dir + "/state.ext4"),
		Options: strings.TrimSpace(string(opts)), Seed: hex.EncodeToString(seed), Epoch: time.Now().Unix(),
	}
	start := time.Now()
	var beside BesideLayout
	if isK3OS {
		beside, err = PlanBeside(in.Arch, parts, disk.Size(), sq.Size())
		if err != nil {
			return res, fmt.Errorf("%s holds k3OS: %w", device, err)
		}
		if err := WriteBeside(disk.File, beside, in); err != nil {
			return res, err
		}
		res.DiskBytes, res.K3OS = beside.DiskBytes, true
	} else {
		l, err := Plan(in.Arch, disk.Size(), sq.Size())
		if err != nil {
			return res, fmt.Errorf("%s: %w", device, err)
		}
		if err := Write(disk.File, l, in); err != nil {
			return res, err
		}
		res.DiskBytes = l.DiskBytes
	}
	disk.Close()
	if err := h.RereadPartitions(device); err != nil {
		return res, err
	}
	state, err := waitPartition(h, bootloader.LabelState)
	if err != nil {
		return res, fmt.Errorf("%s: %w", device, err)
	}
	res.State = state
	mp := root.Path("/run/keso/install-state")
	if err := h.Mount(state, mp, "ext4", 0, ""); err != nil {
		return res, err
	}
	defer h.Unmount(mp)
	if isK3OS {
		// The state image is small (the initrd grows it at first boot):
		// grown to its partition now, for what k3OS's node keeps.
		if _, _, err := h.GrowExt4(mp, beside.New[3].Bytes()); err != nil {
			return res, err
		}
		if err := keepK3OS(h, root, device, k, host.FS{Root: mp}, &res); err != nil {
			return res, err
		}
	}
	// On a k3OS disk the node keeps k3OS's config (its name, token and
	// server: the node's identity in its cluster); the install's config
	// is saved only when k3OS had none. `keso config apply` changes it
	// once keso runs.
	if !isK3OS || !res.KeptConfig() {
		if err := SaveConfig(host.FS{Root: mp}, config); err != nil {
			return res, err
		}
	}
	host.Sync()
	if isK3OS {
		disk, err := h.OpenBlock(device)
		if err != nil {
			return res, err
		}
		defer disk.Close()
		if err := SwitchFromK3OS(disk.File, beside, k); err != nil {
			return res, err
		}
	}
	res.Took = time.Since(start)
	return res, nil
}

// KeptConfig reports whether the install kept k3OS's config.
func (r Result) KeptConfig() bool {
	for _, m := range r.Kept {
		if m.To == strings.TrimPrefix(ConfigPath, "/") && !m.Missing {
			return true
		}
	}
	return false
}

// keepK3OS mounts k3OS's state partition read-only and copies what the
// node keeps onto keso's (mounted at state).
func keepK3OS(h NodeHost, root host.FS, device string, k K3OSDisk, state host.FS, res *Result) error {
	dev := PartitionDevice(device, k.State.Index)
	res.K3OSState = dev
	mp := root.Path("/run/keso/k3os-state")
	if err := h.Mount(dev, mp, "ext4", host.MountReadOnly, ""); err != nil {
		return fmt.Errorf("mount k3OS's %s (%s) read-only: %w", K3OSStateLabel, dev, err)
	}
	defer h.Unmount(mp)
	kept, err := CopyFromK3OS(host.FS{Root: mp}, state)
	res.Kept = kept
	if err != nil {
		return fmt.Errorf("keep k3OS's data (k3OS still boots; its data is untouched on %s): %w", dev, err)
	}
	return nil
}

// PartitionDevice names partition n of a whole-disk device the way the
// kernel does: /dev/sda2, /dev/vda2, but /dev/nvme0n1p2 and /dev/mmcblk0p2
// when the disk's name ends in a digit.
func PartitionDevice(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

func waitPartition(h NodeHost, label string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		dev, err := h.FindPartition(label)
		if err == nil {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Disk is a candidate target disk.
type Disk struct {
	Device string
	Bytes  int64
	Model  string
}

// Disks lists whole disks (not partitions, loop, ram or CD devices) with
// a medium, from host.ScanBlock under root.
func Disks(root host.FS) []Disk {
	devs, _ := host.ScanBlock(root.Path("/"))
	var out []Disk
	for _, b := range devs {
		if !b.Disk() || b.Sectors == 0 {
			continue
		}
		model, _ := root.ReadFile("/sys/class/block/" + b.Name + "/device/model")
		out = append(out, Disk{Device: "/dev/" + b.Name, Bytes: b.Sectors * 512, Model: strings.TrimSpace(string(model))})
	}
	return out
}

// Inspect says whether device holds a k3OS installation that Node would
// install beside (and keep), for the prompt before an install; an error
// is a k3OS disk Node refuses, or a disk it cannot read.
func Inspect(h NodeHost, device string) (k3os bool, err error) {
	disk, err := h.OpenBlock(device)
	if err != nil {
		return false, err
	}
	defer disk.Close()
	_, _, found, err := readDisk(disk.File, device)
	return found, err
}

// readDisk reads the partitions of device (open as disk) and whether they
// hold a k3OS installation (FindK3OS; its error for one keso refuses).
func readDisk(disk *os.File, device string) ([]DiskPart, K3OSDisk, bool, error) {
	table, parts, err := ReadParts(disk)
	if err != nil {
		return nil, K3OSDisk{}, false, fmt.Errorf("%s: %w", device, err)
	}
	k, found, err := FindK3OS(table, parts)
	if err != nil {
		return parts, k, found, fmt.Errorf("%s: %w", device, err)
	}
	return parts, k, found, nil
}
