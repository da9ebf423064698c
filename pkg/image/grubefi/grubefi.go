// Package grubefi makes the GRUB boot path of armv7 under UEFI: the GRUB
// core image (EFI/BOOT/BOOTARM.EFI) built from Debian's grub-efi-arm-bin
// module folder with grub-mkimage, and the ESP that boots slot A through
// pkg/bootloader's grub.cfg, which counts a trial's tries in grub/grubenv.
//
// Why GRUB there: systemd-boot's boot counting is broken in Debian's 32-bit
// ARM build (it renames slot-a+3.conf to "slot-a+0-2(null)" on the first
// try, docs/boot.md), and U-Boot is not an EFI application that AAVMF32 or
// a board's UEFI firmware can start from the ESP. GRUB counts in the boot
// loader, before the kernel starts, so a kernel that panics uses up its
// tries as on systemd-boot and the Pi's U-Boot.
//
// grub-mkimage (Debian's grub-common) is the one host tool here; its
// output depends only on the module folder and the arguments, so builds
// stay reproducible.
package grubefi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/tree"
)

// Tool is the host program that links a GRUB core image.
const Tool = "grub-mkimage"

// InstallHint says how to get Tool.
const InstallHint = "install it with `apt-get install grub-common` (scripts/deps.sh does)"

// Prefix is where the core image looks for grub.cfg on the partition it
// was loaded from.
const Prefix = "/grub"

// Modules are built into the core image: the ESP (GPT or MBR, FAT),
// grub.cfg's commands (normal, configfile/source, test, echo, loadenv,
// sleep, reboot) and the Linux loader.
var Modules = []string{"part_gpt", "part_msdos", "fat", "normal", "configfile", "test", "echo",
	"loadenv", "linux", "sleep", "reboot"}

// Format is grub-mkimage's target for a keso arch.
func Format(arch string) (string, error) {
	switch arch {
	case "armv7":
		return "arm-efi", nil
	case "arm64":
		return "arm64-efi", nil
	case "amd64":
		return "x86_64-efi", nil
	}
	return "", fmt.Errorf("no GRUB EFI target for arch %q", arch)
}

// Check reports whether grub-mkimage is available, with the install
// command if not.
func Check() error {
	if _, err := exec.LookPath(Tool); err != nil {
		return fmt.Errorf("host tool %s not found (the armv7 UEFI boot loader is GRUB): %s", Tool, InstallHint)
	}
	return nil
}

// Mkimage links the core image for arch from modDir (the package's
// usr/lib/grub/<target> folder) into out.
func Mkimage(ctx context.Context, arch, modDir, out string) error {
	return mkimage(ctx, arch, modDir, out, Modules, "")
}

// LiveModules are added to Modules in a live medium's core image: the ISO
// 9660 file system and the search command that finds the medium.
var LiveModules = []string{"iso9660", "search", "search_fs_file"}

// LiveMarker is the file that identifies the live medium's ISO 9660 file
// system to the live core image (the root squashfs, iso.PathSquashfs).
const LiveMarker = "/keso/root.squashfs"

// LiveEarlyConfig is embedded in a live medium's core image. UEFI loads
// the core image from the El Torito EFI image, a FAT file system that GRUB
// cannot name as a device on a CD; so the core image finds the ISO 9660
// file system that holds LiveMarker (the CD, or the whole disk when the
// hybrid image was written to a USB stick) and reads grub/grub.cfg there.
const LiveEarlyConfig = "search --no-floppy --set=root --file " + LiveMarker + "\nset prefix=($root)" + Prefix + "\n"

// MkimageLive links the core image of a live medium for arch: Modules and
// LiveModules, with LiveEarlyConfig embedded (written to a file in tmpDir
// for grub-mkimage).
func MkimageLive(ctx context.Context, arch, modDir, out, tmpDir string) error {
	cfg := filepath.Join(tmpDir, "grub-live-early.cfg")
	if err := os.WriteFile(cfg, []byte(LiveEarlyConfig), 0o644); err != nil {
		return fmt.Errorf("GRUB live core image: %w", err)
	}
	return mkimage(ctx, arch, modDir, out, append(append([]string{}, Modules...), LiveModules...), cfg)
}

func mkimage(ctx context.Context, arch, modDir, out string, modules []string, early string) error {
	format, err := Format(arch)
	if err != nil {
		return err
	}
	if err := Check(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(modDir, "moddep.lst")); err != nil {
		return fmt.Errorf("GRUB module folder %s: %w (want usr/lib/grub/%s of Debian's grub-efi-*-bin package)", modDir, err, format)
	}
	args := []string{"-O", format, "-d", modDir, "-p", Prefix, "-o", out}
	if early != "" {
		args = append(args, "-c", early)
	}
	args = append(args, modules...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, Tool, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", Tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// SlotA is what the ESP of a fresh disk boots: slot A's kernel and initrd
// (host files) and its command line.
type SlotA struct {
	Kernel, Initrd string
	Options        string // without keso.slot
}

// Plan returns the ESP of a disk booting through GRUB: the core image as
// the removable-media loader, grub.cfg, grubenv with slot a good and no
// trial, and slot A's kernel, initrd and cmdline.cfg.
func Plan(arch, coreImage string, a SlotA) (tree.Tree, error) {
	name, err := esp.FallbackName(arch)
	if err != nil {
		return nil, err
	}
	t := tree.Tree{}
	t.Copy(name, 0o644, coreImage)
	t.Data(strings.TrimPrefix(bootloader.GrubConfigPath, "/"), 0o644, []byte(bootloader.GrubConfig(a.Options)))
	t.Data(strings.TrimPrefix(bootloader.GrubEnvPath, "/"), 0o644, bootloader.UBootEnv{Good: bootloader.SlotA}.RenderGrub())
	t.Data(strings.TrimPrefix(bootloader.GrubCmdlinePath(bootloader.SlotA), "/"), 0o644, bootloader.GrubCmdline(a.Options))
	t.Copy(strings.TrimPrefix(bootloader.KernelPath(bootloader.SlotA), "/"), 0o644, a.Kernel)
	t.Copy(strings.TrimPrefix(bootloader.InitrdPath(bootloader.SlotA), "/"), 0o644, a.Initrd)
	return t, nil
}

// Live is what a live medium (the ISO) boots: the live core image and
// the kernel and initrd paths on the medium's ISO 9660 file system, with
// their command line (keso.live and the image's options).
type Live struct {
	CoreImage      string // host file: MkimageLive's output
	Kernel, Initrd string // paths on the medium, e.g. /boot/vmlinuz
	Options        string
}

// PlanLive returns what a live medium booting through GRUB holds: the El
// Torito EFI image (the core image as the removable-media loader, nothing
// else) and the files for the ISO 9660 file system (grub/grub.cfg, the
// live configuration: no slots, no counter).
func PlanLive(arch string, l Live) (efi, medium tree.Tree, err error) {
	name, err := esp.FallbackName(arch)
	if err != nil {
		return nil, nil, err
	}
	efi = tree.Tree{}
	efi.Copy(name, 0o644, l.CoreImage)
	medium = tree.Tree{}
	medium.Data(strings.TrimPrefix(bootloader.GrubConfigPath, "/"), 0o644, []byte(bootloader.GrubLiveConfig(l.Kernel, l.Initrd, l.Options)))
	return efi, medium, nil
}
