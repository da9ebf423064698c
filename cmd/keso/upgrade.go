package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/upgrade"
)

func init() {
	register("upgrade", "write a signed image to the inactive slot and arm a trial boot", runUpgrade)
	register("rollback", "boot the other slot from the next reboot on", runRollback)
	register("status", "show what booted, the upgrade state, config phases and k3s", runStatus)
}

// hostDisk opens root slots by their GPT partition names.
type hostDisk struct{ l host.Linux }

func (d hostDisk) OpenSlot(s bootloader.Slot) (upgrade.SlotDevice, error) {
	dev, err := d.l.FindPartition(s.PartLabel())
	if err != nil {
		return nil, err
	}
	return d.l.OpenBlock(dev)
}

// mountESP returns the ESP's file system, mounting it when needed.
func mountESP(l host.Linux) (host.FS, func(), error) {
	dev, err := l.FindPartition(bootloader.LabelEFI)
	if err != nil {
		return host.FS{}, nil, err
	}
	if mp := l.MountPointOf(dev); mp != "" {
		return host.FS{Root: mp}, func() {}, nil
	}
	const mp = "/run/keso/esp"
	if err := l.Mount(dev, mp, "vfat", 0, ""); err != nil {
		return host.FS{}, nil, err
	}
	return host.FS{Root: mp}, func() { host.Sync(); l.Unmount(mp) }, nil
}

func extraKeys(root host.FS) []string {
	data, err := root.ReadFile(upgrade.EffectiveConfig)
	if err != nil {
		return nil
	}
	r := cloudconfig.LoadFile(upgrade.EffectiveConfig, data)
	if r.Config.Keso.Upgrade == nil {
		return nil
	}
	return r.Config.Keso.Upgrade.PublicKeys
}

func runUpgrade(args []string) int {
	fs := flag.NewFlagSet("keso upgrade", flag.ContinueOnError)
	image := fs.String("image", "", "image URL (https://, file://) or path of keso-<version>-<arch>.squashfs")
	sum := fs.String("sha256", "", "expected sha256 (default: read <image>.sha256)")
	reboot := fs.Bool("reboot", false, "reboot into the new slot when armed")
	downgrade := fs.Bool("allow-downgrade", false, "allow an older or the same version")
	tries := fs.Int("tries", bootloader.DefaultTries, "boots the new slot gets before falling back")
	stage := fs.Bool("stage", false, "fetch, verify and write the inactive slot, but arm nothing (keso upgrade --switch arms it later)")
	switchNow := fs.Bool("switch", false, "arm the image --stage wrote (no --image); with --reboot, boot it")
	var maxRate rateFlag
	fs.Var(&maxRate, "max-rate", "at most this many bytes a second for the download, a Kubernetes quantity (56Ki, 1M; default: no limit)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	switch {
	case *switchNow && (*image != "" || *stage):
		fmt.Fprintln(os.Stderr, "keso upgrade: --switch arms what --stage wrote: it takes no --image and no --stage")
		return 2
	case !*switchNow && *image == "":
		fmt.Fprintln(os.Stderr, "keso upgrade: --image is required (or --switch, to arm a staged image)")
		return 2
	}
	l := host.Linux{}
	root := host.FS{Root: "/"}
	// One keso upgrade at a time: two would write the same slot (a
	// stage Job still running when the window's upgrade starts).
	unlock, err := root.TryLock(upgrade.LockPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso upgrade: another keso upgrade is running (%v); wait for it, or stop it\n", err)
		return 1
	}
	defer unlock()
	bp, err := openBoot(l, root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso upgrade: %v\n", err)
		return 1
	}
	unmount := bp.Unmount
	defer unmount()
	node, err := upgrade.ReadNode(root, bp.NodeESP, extraKeys(root))
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso upgrade: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u := &upgrade.Upgrader{Disk: bp.Disk, ESP: bp.FS, Boot: bp.Loader, State: root, WorkDir: "/var/lib/keso/upgrade", Log: os.Stdout}
	var out upgrade.Outcome
	if *switchNow {
		out, err = u.Switch(node, *tries)
	} else {
		out, err = u.Run(ctx, upgrade.Request{Image: *image, SHA256: *sum, AllowDowngrade: *downgrade, Tries: *tries, MaxRate: int64(maxRate), Stage: *stage}, node)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso upgrade: %v\n", err)
		if errors.Is(err, upgrade.ErrRefused) {
			return 3
		}
		return 1
	}
	if *switchNow || out.Switched {
		fmt.Printf("keso upgrade: %s → %s armed on slot %s (staged; checked in %s)\n", out.FromVersion, out.ToVersion, out.Slot, out.ReadTime.Round(time.Millisecond))
	} else {
		done := "armed"
		if out.Staged {
			done = "staged"
		}
		via := ""
		if out.Delta() {
			via = "; built from a delta and " + out.DeltaFrom
		}
		fmt.Printf("keso upgrade: %s → %s %s on slot %s: %d bytes, %d downloaded, fetch %s, verify %s, write %s, read back %s, dm-verity tree %s, peak memory %s%s\n",
			out.FromVersion, out.ToVersion, done, out.Slot, out.ImageBytes, out.Downloaded, out.FetchTime.Round(time.Millisecond),
			out.VerifyTime.Round(time.Millisecond), out.WriteTime.Round(time.Millisecond), out.ReadTime.Round(time.Millisecond),
			out.VerityTime.Round(time.Millisecond), peakMemory(), via)
	}
	if *reboot && !out.Staged {
		unmount()
		return askInit(power.Reboot)
	}
	return 0
}

func runRollback(args []string) int {
	fs := flag.NewFlagSet("keso rollback", flag.ContinueOnError)
	reboot := fs.Bool("reboot", false, "reboot now")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	l := host.Linux{}
	root := host.FS{Root: "/"}
	bp, err := openBoot(l, root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso rollback: %v\n", err)
		return 1
	}
	unmount := bp.Unmount
	defer unmount()
	node, err := upgrade.ReadNode(root, bp.NodeESP, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso rollback: %v\n", err)
		return 1
	}
	other, err := upgrade.RollbackBoot(bp.Loader, root, node.Slot, node.Version, "keso rollback by an operator", time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso rollback: %v\n", err)
		return 1
	}
	fmt.Printf("keso rollback: slot %s boots next\n", other)
	if *reboot {
		unmount()
		return askInit(power.Reboot)
	}
	return 0
}

func runStatus(args []string) int {
	fs := flag.NewFlagSet("keso status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print status.json (with k3s_binary from the image)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	root := host.FS{Root: "/"}
	k3s, kerr := status.ReadK3sBinary(root)
	if kerr != nil {
		fmt.Fprintf(os.Stderr, "keso status: %v\n", kerr)
	}
	if *asJSON && k3s == nil {
		data, err := root.ReadFile(status.Path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso status: %v\n", err)
			return 1
		}
		os.Stdout.Write(data)
		return 0
	}
	s, err := status.Read(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso status: %v\n", err)
		return 1
	}
	if s.K3sBinary == nil {
		s.K3sBinary = k3s
	}
	// What keso upgrade --stage did since boot is in the upgrade state.
	if st, err := upgrade.LoadState(root); err == nil && s.Upgrade != nil {
		s.Upgrade.Staged = st.Staged
	}
	if *asJSON {
		data, _ := json.MarshalIndent(s, "", "  ")
		os.Stdout.Write(append(data, '\n'))
		return 0
	}
	status.Render(os.Stdout, s)
	return 0
}

// peakMemory is this process's peak resident set so far ("?" when the
// kernel does not say), for the summary: what an upgrade needs of a small
// box's memory.
func peakMemory() string {
	n, err := host.PeakRSS()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// rateFlag is --max-rate: bytes a second as a Kubernetes quantity, the
// syntax of the OSVersion's spec.maxRate ("56Ki", "1M", "0" for no limit).
type rateFlag int64

func (r *rateFlag) String() string { return fmt.Sprint(int64(*r)) }

func (r *rateFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 {
		return fmt.Errorf("%q is not a rate in bytes a second: want a quantity like 56Ki, 512Ki or 1M (0: no limit)", s)
	}
	*r = rateFlag(q.Value())
	return nil
}
