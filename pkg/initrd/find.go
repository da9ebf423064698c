package initrd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/host"
)

// FindRoot finds the root for plan, mounts it read-only on /sysroot and
// fills info.
func (s *Stage) FindRoot(ctx context.Context, plan Plan, info *Info) error {
	s.defaults()
	switch plan.Mode {
	case ModeNetboot:
		return s.netbootRoot(ctx, plan, info)
	case ModeDisk, ModeLive, ModeAuto:
	default:
		return fmt.Errorf("unknown boot mode %q", plan.Mode)
	}
	dev, mode, survey, err := s.waitForRoot(ctx, plan)
	if err != nil {
		return err
	}
	if dev == "" {
		return fmt.Errorf("root not found after %s: looked for %s; found: %s", plan.RootWait, wanted(plan), survey)
	}
	info.Mode, info.Slot = mode, plan.Slot
	if mode == ModeDisk {
		if info.Slot == "" {
			info.Slot = "a"
		}
		info.Root, info.RootDevice = dev, dev
		info.MBRDisk = plan.MBRDisk
		s.logf("found %s on %s", describeSlot(plan, info.Slot), dev)
		root, err := s.verityRoot(plan, dev, info)
		if err != nil {
			return err
		}
		return s.mountSquashfs(root, info)
	}
	s.logf("found ISO 9660 volume %s on %s", LiveLabel, dev)
	if err := s.Host.Mount(dev, s.path(MediaDir), "iso9660", host.MountReadOnly, ""); err != nil {
		return fmt.Errorf("live root: %w", err)
	}
	sq := filepath.Join(s.path(MediaDir), LiveSquashfs)
	if _, err := os.Stat(sq); err != nil {
		return fmt.Errorf("live root: volume %s on %s has no /%s: %w", LiveLabel, dev, LiveSquashfs, err)
	}
	info.Root = dev + ":/" + LiveSquashfs
	return s.loopMount(sq, info)
}

func wanted(plan Plan) string {
	switch plan.Mode {
	case ModeDisk:
		if plan.MBRDisk != "" {
			return describeSlot(plan, plan.Slot) + " or GPT partition labelled " + RootPartLabel(plan.Slot)
		}
		return "GPT partition labelled " + RootPartLabel(plan.Slot)
	case ModeLive:
		return "an ISO 9660 volume labelled " + LiveLabel + " (CD-ROM or USB stick)"
	}
	return "GPT partition labelled " + RootPartLabel("a") + " or an ISO 9660 volume labelled " + LiveLabel
}

// waitForRoot scans the block devices until the root for plan appears or
// plan.RootWait passes. It returns the device path ("" if not found), the
// mode it implies and a survey of what it saw last.
func (s *Stage) waitForRoot(ctx context.Context, plan Plan) (string, Mode, Survey, error) {
	deadline := s.Now().Add(plan.RootWait)
	slot := plan.Slot
	if slot == "" {
		slot = "a"
	}
	lastReport := s.Now()
	s.logf("looking for %s (up to %s)", wanted(plan), plan.RootWait)
	for {
		devs, err := host.ScanBlock(s.path("/"))
		if err != nil {
			return "", "", nil, err
		}
		var survey Survey
		if plan.Mode != ModeLive {
			if plan.MBRDisk != "" {
				if name, ok := s.findMBRPart(plan.MBRDisk, MBRRootPart(slot)); ok {
					return s.devPath(name), ModeDisk, nil, nil
				}
			}
			if d, ok := FindPartLabel(devs, RootPartLabel(slot)); ok {
				return s.devPath(d.Name), ModeDisk, nil, nil
			}
		}
		for _, d := range devs {
			if strings.HasPrefix(d.Name, "loop") || strings.HasPrefix(d.Name, "ram") {
				continue
			}
			iso := ""
			if plan.Mode != ModeDisk {
				label, ok, err := ISOLabel(s.devPath(d.Name))
				switch {
				case err != nil:
					iso = "unreadable: " + shortErr(err)
				case ok && label == LiveLabel:
					return s.devPath(d.Name), ModeLive, nil, nil
				case ok:
					iso = fmt.Sprintf("ISO label %q", label)
				}
			}
			survey = append(survey, describe(d, iso))
		}
		if !s.Now().Before(deadline) || ctx.Err() != nil {
			return "", "", survey, nil
		}
		if s.Now().Sub(lastReport) >= 10*time.Second {
			s.logf("still looking for %s; found so far: %s", wanted(plan), survey)
			lastReport = s.Now()
		}
		s.Sleep(s.Poll)
	}
}

func shortErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func (s *Stage) devPath(name string) string { return s.path(filepath.Join("/dev", name)) }

func (s *Stage) loopMount(file string, info *Info) error {
	loop, err := s.Host.AttachLoop(file)
	if err != nil {
		return fmt.Errorf("%s root: %w", info.Mode, err)
	}
	s.logf("attached %s to %s", file, loop)
	info.RootDevice = loop
	return s.mountSquashfs(loop, info)
}

func (s *Stage) mountSquashfs(dev string, info *Info) error {
	if err := s.Host.Mount(dev, s.path(Sysroot), "squashfs", host.MountReadOnly, ""); err != nil {
		if what := sniff(s.path(dev)); what != "a squashfs" {
			return fmt.Errorf("%s root: %s holds %s, not a squashfs (an empty or overwritten slot?): %w", info.Mode, dev, what, err)
		}
		return fmt.Errorf("%s root: %w (it is a squashfs: is the squashfs module in the initrd?)", info.Mode, err)
	}
	if _, err := os.Lstat(filepath.Join(s.path(Sysroot), Init)); err != nil { // Lstat: often an absolute symlink
		return fmt.Errorf("%s root on %s: no %s in it: %w", info.Mode, dev, Init, err)
	}
	return nil
}

// Layers mounts the state partition (disk mode), grows it, and mounts the
// writable layers.
func (s *Stage) Layers(info *Info) error {
	s.defaults()
	stateDir := ""
	if info.Mode == ModeDisk {
		devs, err := host.ScanBlock(s.path("/"))
		if err != nil {
			return err
		}
		if d, ok := s.statePart(devs, info); ok {
			dev := s.devPath(d.Name)
			stateDir = filepath.Join(Sysroot, StateDir)
			if g, err := s.growPartition(d, StatePartLabel); err != nil {
				s.logf("state: not growing the %s partition: %v", StatePartLabel, err)
			} else if g != nil {
				info.StatePart = []uint64{g.OldEnd, g.NewEnd}
				s.logf("state: grew partition %s to the end of the disk (LBA %d-%d, was -%d)", d.Name, g.Start, g.NewEnd, g.OldEnd)
			}
			if err := s.Host.Mount(dev, s.path(stateDir), "ext4", host.MountNoSuid|host.MountNoDev, ""); err != nil {
				return fmt.Errorf("state partition %s: %w", StatePartLabel, err)
			}
			info.State = dev
			size, err := s.Host.BlockSize(dev)
			if err != nil {
				return fmt.Errorf("state partition: %w", err)
			}
			before, after, err := s.Host.GrowExt4(s.path(stateDir), size)
			if err != nil {
				// A file system we cannot grow still works; say so and go on.
				s.logf("state: %v", err)
			} else if after != before {
				s.logf("state: grew %s from %d to %d blocks to fill its partition (%d MiB)", dev, before, after, size>>20)
			}
			info.StateGrown = []uint64{before, after}
		} else {
			s.logf("no %s partition: /var and /etc changes live in RAM", StatePartLabel)
		}
	}
	for _, op := range LayerPlan(Sysroot, stateDir, RunDir) {
		for _, d := range op.Mkdir {
			if err := s.fs().MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("writable layers: create %s: %w", d, err)
			}
		}
		var flags uintptr
		if op.Bind {
			flags |= host.MountBind
		}
		if op.ReadOnly {
			flags |= host.MountReadOnly
		}
		data := op.Data
		if op.FSType == "overlay" {
			data = prefixOverlay(data, s.Root)
		}
		src := op.Source
		if op.Bind {
			src = s.path(src)
		}
		if err := s.Host.Mount(src, s.path(op.Target), op.FSType, flags, data); err != nil {
			return fmt.Errorf("writable layers: %w", err)
		}
	}
	return nil
}

// prefixOverlay puts root in front of the directories of an overlay option
// string (only matters in tests, where root is not "/").
func prefixOverlay(data, root string) string {
	if root == "/" || root == "" {
		return data
	}
	opts := strings.Split(data, ",")
	for i, o := range opts {
		if k, v, ok := strings.Cut(o, "="); ok && strings.HasSuffix(k, "dir") {
			opts[i] = k + "=" + filepath.Join(root, v)
		}
	}
	return strings.Join(opts, ",")
}

// growPartition extends the partition part (labelled label on GPT, by its
// number on MBR) to the end of its disk when the disk is larger than the image that was written to it.
// It returns nil, nil when there is nothing to do.
func (s *Stage) growPartition(part host.BlockDev, label string) (*GPTGrow, error) {
	real, err := filepath.EvalSymlinks(s.path("/sys/class/block/" + part.Name))
	if err != nil {
		return nil, err
	}
	disk := filepath.Base(filepath.Dir(real))
	ss := 512
	if b, err := os.ReadFile(s.path("/sys/class/block/" + disk + "/queue/logical_block_size")); err == nil {
		fmt.Sscan(strings.TrimSpace(string(b)), &ss)
	}
	var size512 uint64
	b, err := os.ReadFile(s.path("/sys/class/block/" + disk + "/size"))
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &size512); err != nil {
		return nil, fmt.Errorf("size of %s: %w", disk, err)
	}
	diskPath := s.devPath(disk)
	f, err := os.Open(diskPath)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 1<<20)
	n, err := f.ReadAt(head, 0)
	f.Close()
	if n < 34*ss {
		return nil, fmt.Errorf("read partition table of %s: %v", diskPath, err)
	}
	g, err := planGrow(head[:n], ss, size512*512/uint64(ss), label, part.PartN)
	if errors.Is(err, ErrGPTNoGrow) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", diskPath, err)
	}
	if err := s.Host.PatchDevice(diskPath, g.Writes); err != nil {
		return nil, fmt.Errorf("write partition table of %s: %w", diskPath, err)
	}
	err = s.Host.ResizePartition(diskPath, g.Partition, int64(g.Start)*int64(ss), int64(g.NewEnd-g.Start+1)*int64(ss))
	return g, err
}

// sniff names what the first bytes of a device or file look like.
func sniff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "nothing readable (" + shortErr(err) + ")"
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(f, b); err != nil {
		return "nothing readable (" + shortErr(err) + ")"
	}
	switch {
	case string(b) == "hsqs":
		return "a squashfs"
	case b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0:
		return "zeros"
	}
	return fmt.Sprintf("data starting %x", b)
}
