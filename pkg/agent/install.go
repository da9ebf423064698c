package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/install"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/power"
)

// Where a live system finds what it installs.
const (
	LiveSquashfs   = "/run/keso/media/keso/root.squashfs"
	InstallDir     = "/usr/share/keso/install"
	StateImage     = InstallDir + "/state.ext4"
	KernelOptsFile = InstallDir + "/cmdline" // the installed system's kernel command line
)

// install runs the silent install of the "USB stick that installs the
// store box": with install.device and install.silent in a live boot it
// writes the disk, saves the config, and powers off (install.power_off) or
// reboots. It returns the power request, or nil when it did not install.
func (a *Agent) install(_ context.Context) *power.Request {
	in := a.cfg.Keso.Install
	if !in.Silent {
		fmt.Fprintf(a.Log, "keso: install: install.device is %s; run `keso install` to install (set install.silent to install at boot)\n", in.Device)
		return nil
	}
	var req *power.Request
	a.phase("install", func(rec *phase.Recorder) {
		if err := a.installTo(in.Device, rec); err != nil {
			rec.Fail("keso.install.device", err)
			return
		}
		if in.PowerOff {
			req = &power.Request{Action: power.PowerOff, Reason: "installed to " + in.Device}
		} else {
			req = &power.Request{Action: power.Reboot, Reason: "installed to " + in.Device}
		}
	})
	return req
}

func (a *Agent) installTo(device string, rec *phase.Recorder) error {
	arch, err := a.FS.ReadFile(InstallDir + "/arch")
	if err != nil {
		return fmt.Errorf("this image carries no installer files (%s): %w", InstallDir, err)
	}
	opts, _ := a.FS.ReadFile(KernelOptsFile)
	sq, err := os.Stat(a.FS.Path(LiveSquashfs))
	if err != nil {
		return fmt.Errorf("the live root image: %w", err)
	}
	disk, err := a.Host.OpenBlock(device)
	if err != nil {
		return err
	}
	defer disk.Close()
	l, err := install.Plan(string(trim(arch)), disk.Size(), sq.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", device, err)
	}
	seed := make([]byte, 16)
	rand.Read(seed)
	start := time.Now()
	err = install.Write(disk.File, l, install.Inputs{
		Arch: string(trim(arch)), Squashfs: a.FS.Path(LiveSquashfs), Kernel: a.FS.Path("/boot/vmlinuz"),
		Initrd: a.FS.Path("/boot/initrd"), Loader: a.FS.Path(InstallDir + "/loader.efi"), StateImage: a.FS.Path(StateImage),
		Options: string(trim(opts)), Seed: hex.EncodeToString(seed), Epoch: time.Now().Unix(),
	})
	if err != nil {
		return err
	}
	rec.Change("write", device, fmt.Sprintf("%d MiB disk in %s", l.DiskBytes>>20, time.Since(start).Round(time.Millisecond)))
	disk.Close()
	// Re-read the partition table, then save the config on the new state.
	if err := a.Host.RereadPartitions(device); err != nil {
		return err
	}
	state, err := waitPartition(a.Host, "KESO_STATE", device)
	if err != nil {
		return err
	}
	mp := a.FS.Path("/run/keso/install-state")
	if err := a.Host.Mount(state, mp, "ext4", 0, ""); err != nil {
		return err
	}
	defer a.Host.Unmount(mp)
	cfg, err := a.FS.ReadFile(EffectiveConfig)
	if err != nil {
		return err
	}
	if err := install.SaveConfig(host.FS{Root: mp}, cfg); err != nil {
		return err
	}
	rec.Change("save", "/keso/config.yaml", "on "+state)
	syncFS()
	return nil
}

// waitPartition waits for the kernel to show a partition with the label on device.
func waitPartition(h host.Linux, label, device string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		dev, err := h.FindPartition(label)
		if err == nil {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s on %s: %w", label, device, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func syncFS() { syscall.Sync() }
