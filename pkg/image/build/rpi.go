package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/keso-os/keso/pkg/image/sdcard"
	"github.com/keso-os/keso/pkg/image/tree"
)

// Raspberry Pi SD card image (output rpi): the inputs are resolved before
// the root is planned (the Wi-Fi blobs go into the root), the card is
// written after the raw disk.

// rpiInputs are the unpacked Pi inputs.
type rpiInputs struct {
	firmware map[string]string // FAT name -> host file
	uboot    map[string]string // config.txt filter -> host u-boot.bin
	dtbs     map[string]string // FAT name -> host file
	wifi     tree.Tree         // lib/firmware/... for the root
}

func (b *builder) wantsRPi() bool { return b.outs["rpi"] && b.prof.RPi != nil }

// initrdModules are the profile's initrd modules plus the Pi's when the
// SD card image is built (one initrd serves every output).
func (b *builder) initrdModules() []string {
	m := append([]string{}, b.prof.InitrdModules...)
	if b.wantsRPi() {
		m = append(m, b.prof.RPi.InitrdModules...)
	}
	return m
}

// rootModules are every module the root carries.
func (b *builder) rootModules() []string {
	m := append(append([]string{}, b.prof.Modules...), b.initrdModules()...)
	if b.wantsRPi() {
		m = append(m, b.prof.RPi.Modules...)
	}
	return m
}

// addRPiRoot puts the Wi-Fi blobs into the root tree.
func (b *builder) addRPiRoot(t tree.Tree) {
	if b.rpi == nil {
		return
	}
	for p, n := range b.rpi.wifi {
		t[p] = n
	}
}

func (b *builder) stepRPiInputs(ctx context.Context) (string, string, error) {
	if !b.outs["rpi"] {
		return "", "skipped", nil
	}
	r := b.prof.RPi
	if r == nil {
		return "", "", fmt.Errorf("output rpi needs an rpi: block in the profile (firmware, uboot, uboot_builds, dtbs)")
	}
	in := &rpiInputs{firmware: map[string]string{}, uboot: map[string]string{}, dtbs: map[string]string{}, wifi: tree.Tree{}}
	var descs []string

	p, desc, err := b.resolveInput(ctx, r.Firmware, "all")
	if err != nil {
		return "", "", err
	}
	const fwDir = "usr/lib/raspi-firmware/"
	dir, err := b.unpackDeb(p, "raspi-firmware", func(n string) bool { return strings.HasPrefix(n, fwDir) })
	if err != nil {
		return "", "", err
	}
	ents, _ := os.ReadDir(filepath.Join(dir, fwDir))
	for _, e := range ents {
		n := e.Name()
		if n == "bootcode.bin" || (strings.HasPrefix(n, "start") && strings.HasSuffix(n, ".elf")) || (strings.HasPrefix(n, "fixup") && strings.HasSuffix(n, ".dat")) {
			in.firmware[n] = filepath.Join(dir, fwDir, n)
		}
	}
	if _, ok := in.firmware["start.elf"]; !ok {
		return "", "", fmt.Errorf("%s has no %sstart.elf: is it Debian's raspi-firmware?", desc, fwDir)
	}
	descs = append(descs, desc)

	p, desc, err = b.resolveInput(ctx, r.UBoot, b.prof.DebArch())
	if err != nil {
		return "", "", err
	}
	dir, err = b.unpackDeb(p, "u-boot-rpi", func(n string) bool { return strings.HasPrefix(n, "usr/lib/u-boot/") })
	if err != nil {
		return "", "", err
	}
	for filter, build := range r.UBootBuilds {
		f := filepath.Join(dir, "usr/lib/u-boot", build, "u-boot.bin")
		if _, err := os.Stat(f); err != nil {
			have, _ := filepath.Glob(filepath.Join(dir, "usr/lib/u-boot/*"))
			for i := range have {
				have[i] = filepath.Base(have[i])
			}
			return "", "", fmt.Errorf("rpi.uboot_builds[%s]: %s has no U-Boot build %q (it has: %s)", filter, desc, build, strings.Join(have, ", "))
		}
		in.uboot[filter] = f
	}
	descs = append(descs, desc)

	kp, _, err := b.resolveInput(ctx, b.prof.Kernel, b.prof.DebArch())
	if err != nil {
		return "", "", err
	}
	dir, err = b.unpackDeb(kp, "dtbs", func(n string) bool {
		return strings.HasPrefix(n, "usr/lib/linux-image-") && strings.HasSuffix(n, ".dtb")
	})
	if err != nil {
		return "", "", err
	}
	dtbRoots, _ := filepath.Glob(filepath.Join(dir, "usr/lib/linux-image-*"))
	if len(dtbRoots) != 1 {
		return "", "", fmt.Errorf("kernel package: want one usr/lib/linux-image-<version>/ folder of DTBs, found %d", len(dtbRoots))
	}
	for _, d := range r.DTBs {
		f := filepath.Join(dtbRoots[0], filepath.FromSlash(d))
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("rpi.dtbs: %s is not in the kernel package (%s): %w", d, filepath.Base(dtbRoots[0]), err)
		}
		in.dtbs[filepath.Base(d)] = f
	}

	if len(r.WiFiBlobs) > 0 {
		p, desc, err = b.resolveInput(ctx, r.WiFiFirmware, "all")
		if err != nil {
			return "", "", err
		}
		dir, err = b.unpackDeb(p, "wifi", func(n string) bool { return strings.HasPrefix(n, "lib/firmware/") })
		if err != nil {
			return "", "", err
		}
		for _, g := range r.WiFiBlobs {
			ms, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(g)))
			if len(ms) == 0 {
				return "", "", fmt.Errorf("rpi.wifi_blobs: nothing matches %s in %s", g, desc)
			}
			for _, m := range ms {
				rel, _ := filepath.Rel(dir, m)
				rel = filepath.ToSlash(rel)
				fi, err := os.Lstat(m)
				if err != nil {
					return "", "", err
				}
				if fi.Mode()&os.ModeSymlink != 0 {
					target, err := os.Readlink(m)
					if err != nil {
						return "", "", err
					}
					in.wifi.Symlink(rel, target)
				} else {
					in.wifi.Copy(rel, 0o644, m)
				}
			}
		}
		descs = append(descs, desc)
	}
	b.rpi = in
	return "", fmt.Sprintf("%s; %d firmware files, %d DTBs, %d Wi-Fi files", strings.Join(descs, ", "),
		len(in.firmware), len(in.dtbs), len(in.wifi)), nil
}

func (b *builder) stepRPi(ctx context.Context) (string, string, error) {
	if !b.outs["rpi"] {
		return "", "skipped", nil
	}
	r := b.prof.RPi
	diskID := sdcard.DiskID(b.seed())
	cmdline := r.Cmdline
	if cmdline == "" {
		cmdline = b.prof.Cmdline
	}
	slotA, initrdA, err := b.sealSlotA()
	if err != nil {
		return "", "", err
	}
	boot, err := sdcard.BootTree(sdcard.BootSpec{Arch: b.prof.Arch, Firmware: b.rpi.firmware, UBoot: b.rpi.uboot, DTBs: b.rpi.dtbs,
		Kernel: b.vmlinuz, Initrd: initrdA, Cmdline: cmdline, DiskID: diskID, Epoch: b.opts.Epoch})
	if err != nil {
		return "", "", err
	}
	rootMiB, stateMiB, err := b.slotSizes()
	if err != nil {
		return "", "", err
	}
	bootMiB := r.BootMiB
	if bootMiB == 0 {
		bootMiB = 256
	}
	l := sdcard.Layout{BootMiB: bootMiB, RootMiB: rootMiB, StateMiB: stateMiB}
	if err := sdcard.Write(ctx, b.out("rpi"), sdcard.Options{Seed: b.seed(), Layout: l, Boot: boot, Squashfs: slotA,
		Epoch: b.opts.Epoch, TmpDir: b.work}); err != nil {
		return "", "", err
	}
	var uboots []string
	for f, build := range r.UBootBuilds {
		uboots = append(uboots, f+"="+build)
	}
	sort.Strings(uboots)
	_, size := sdcard.Plan(l)
	return b.out("rpi"), fmt.Sprintf("MBR %08x: %s %d MiB, root A/B %d MiB, state %d MiB, card %d MiB; U-Boot %s; %d DTBs",
		diskID, sdcard.BootLabel, bootMiB, rootMiB, stateMiB, size>>20, strings.Join(uboots, " "), len(b.rpi.dtbs)), nil
}
