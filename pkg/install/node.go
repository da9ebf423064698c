package install

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
}

// Result says what Node did.
type Result struct {
	DiskBytes int64
	State     string // the state partition's device
	Took      time.Duration
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
	l, err := Plan(strings.TrimSpace(string(arch)), disk.Size(), sq.Size())
	if err != nil {
		return res, fmt.Errorf("%s: %w", device, err)
	}
	seed := make([]byte, 16)
	rand.Read(seed)
	start := time.Now()
	loader, _ := root.ReadFile(Dir + "/bootloader") // "grub" on armv7; absent: systemd-boot
	err = Write(disk.File, l, Inputs{
		Grub: strings.TrimSpace(string(loader)) == "grub",
		Arch: strings.TrimSpace(string(arch)), Squashfs: root.Path(squashfs), Kernel: root.Path("/boot/vmlinuz"),
		Initrd: root.Path("/boot/initrd"), Loader: root.Path(Dir + "/loader.efi"), StateImage: root.Path(Dir + "/state.ext4"),
		Options: strings.TrimSpace(string(opts)), Seed: hex.EncodeToString(seed), Epoch: time.Now().Unix(),
	})
	if err != nil {
		return res, err
	}
	disk.Close()
	res.DiskBytes = l.DiskBytes
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
	if err := SaveConfig(host.FS{Root: mp}, config); err != nil {
		return res, err
	}
	host.Sync()
	res.Took = time.Since(start)
	return res, nil
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
