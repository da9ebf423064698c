// Package profile loads image profiles (images/*.yaml): what goes into the
// image for one architecture — kernel package, module sets, k3s release,
// bootloaders, kernel command line and the artifacts to write.
package profile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Input is a build input: a Debian package found by name in the package
// folders (--debs), or a pinned URL/file with its sha256.
type Input struct {
	// Package is a Debian package name; "*" globs are allowed
	// (linux-image-*-cloud-amd64). The newest version found wins.
	Package string `yaml:"package,omitempty"`
	// DebArch is the Debian architecture of the package (amd64, arm64, armhf, all).
	DebArch string `yaml:"deb_arch,omitempty"`
	URL     string `yaml:"url,omitempty"`
	SHA256  string `yaml:"sha256,omitempty"`
}

// K3s pins a k3s release.
type K3s struct {
	Version string `yaml:"version"`
	// URL is the release asset for the arch (k3s, k3s-arm64, k3s-armhf);
	// the release's sha256sum-<arch>.txt is looked up beside it.
	URL string `yaml:"url"`
	// SHA256 pins the asset. All zeros is the placeholder for "not known
	// yet": the build then verifies against the release's sha256sum file.
	SHA256 string `yaml:"sha256"`
}

// Pinned reports whether SHA256 is a real pin (not the all-zeros
// placeholder).
func (k K3s) Pinned() bool {
	return strings.Trim(k.SHA256, "0") != ""
}

// Bootloader names where each bootloader comes from.
type Bootloader struct {
	// UEFI: systemd-boot; File is the path of the .efi inside the package.
	UEFI *BootFile `yaml:"uefi,omitempty"`
	// BIOS: isolinux (BIOS ISO boot); Files inside the packages.
	BIOS *BIOS `yaml:"bios,omitempty"`
	// Grub: GRUB for UEFI, linked with grub-mkimage from the package's
	// module folder (Dir, e.g. usr/lib/grub/arm-efi). When set it is the
	// A/B boot loader of the raw disk and of `keso install` (armv7, where
	// systemd-boot's counting is broken); uefi stays the ISO's loader.
	Grub *BootDir `yaml:"grub,omitempty"`
}

// BootDir is one folder taken from a package.
type BootDir struct {
	Input `yaml:",inline"`
	Dir   string `yaml:"dir"`
}

// BootFile is one file taken from a package.
type BootFile struct {
	Input `yaml:",inline"`
	File  string `yaml:"file"`
}

// BIOS is isolinux: isolinux.bin + isohdpfx.bin from the isolinux package,
// ldlinux.c32 from syslinux-common.
type BIOS struct {
	Isolinux Input `yaml:"isolinux"`
	Syslinux Input `yaml:"syslinux"`
}

// Profile is one image profile.
type Profile struct {
	Name    string `yaml:"name"`
	Arch    string `yaml:"arch"` // amd64, arm64, armv7
	Version string `yaml:"version"`
	Kernel  Input  `yaml:"kernel"`
	// Modules are shipped in the root (with everything they depend on).
	Modules []string `yaml:"modules"`
	// InitrdModules are the modules needed to find the root; they go into
	// the initrd and are listed in /etc/keso/initrd-modules.
	InitrdModules []string `yaml:"initrd_modules"`
	// CACertificates is the Debian ca-certificates package; its Mozilla
	// certificates become /etc/ssl/certs/ca-certificates.crt.
	CACertificates Input      `yaml:"ca_certificates"`
	K3s            K3s        `yaml:"k3s"`
	Bootloader     Bootloader `yaml:"bootloader"`
	Cmdline        string     `yaml:"cmdline"`
	// Outputs: squashfs, initrd, vmlinuz, iso, raw, netboot, rpi.
	Outputs []string `yaml:"outputs"`
	// RootSizeMiB is the size of each root slot in the raw disk (0 = squashfs size + 25%, rounded to 64 MiB).
	RootSizeMiB int `yaml:"root_size_mib,omitempty"`
	// StateSizeMiB is the size of KESO_STATE in the raw disk (grown on first boot).
	StateSizeMiB int `yaml:"state_size_mib,omitempty"`
	// Compression for mksquashfs: zstd (default), xz, gzip or none
	// (pkg/image/squashfs).
	Compression string `yaml:"compression,omitempty"`
	// RPi describes the Raspberry Pi SD card image (output rpi).
	RPi *RPi `yaml:"rpi,omitempty"`
	// WiFi ships a WPA supplicant for the cloud-config's `wifi:` networks.
	WiFi *WiFi `yaml:"wifi,omitempty"`
	// Admin ships the admin's userland a k3OS user expects: bash, busybox's
	// tools and sudo for rancher.
	Admin *Admin `yaml:"admin,omitempty"`
	// Extra are host folders added to the root file system, in order
	// (pkg/image/extra: they add files, never replace keso's). Load makes
	// relative paths relative to the profile file's folder.
	Extra []string `yaml:"extra,omitempty"`
}

// WiFi is Debian's wpa_supplicant shipped in the root (usr/sbin) with
// exactly the shared libraries it loads, at their Debian paths, and the
// program interpreter at its PT_INTERP path (pkg/image/sharedlib).
type WiFi struct {
	// Supplicant is Debian's wpasupplicant (deb_arch: the profile's).
	Supplicant Input `yaml:"supplicant"`
	// Libraries are the Debian packages (the profile's Debian arch) that
	// hold the libraries; only the files the program's DT_NEEDED closure
	// names are shipped. A library found in none of them fails the build.
	Libraries []string `yaml:"libraries"`
}

// Admin is the userland of the node's admins and their scripts, what a
// k3OS user's habits need (issue #17): Debian's bash-static as /bin/bash
// (rancher's login shell), busybox-static's tools (grep -E, head -3,
// ps aux, /usr/bin/env, …) linked in /usr/bin, ahead of keso's own /bin
// in every user's PATH, and Debian's sudo (rancher may run anything as
// root, as on k3OS) with the shared libraries of sudo, its sudoers plugin
// and the PAM modules it loads.
type Admin struct {
	Bash    Input `yaml:"bash"`    // bash-static
	Busybox Input `yaml:"busybox"` // busybox-static
	Sudo    Input `yaml:"sudo"`    // sudo
	// Libraries are the Debian packages (the profile's Debian arch) that
	// hold the shared libraries and PAM modules; only what the closure
	// needs is shipped.
	Libraries []string `yaml:"libraries"`
}

// RPi is the Raspberry Pi SD card image's part of a profile: where the
// boot firmware, U-Boot and the Wi-Fi blobs come from, which U-Boot build
// each board family starts, the DTBs of the supported boards, and the
// modules the boards need (added to the root and the initrd when the rpi
// output is built).
type RPi struct {
	// Firmware is Debian's raspi-firmware (bootcode.bin, start*.elf, fixup*.dat).
	Firmware Input `yaml:"firmware"`
	// UBoot is Debian's u-boot-rpi for the profile's Debian arch.
	UBoot Input `yaml:"uboot"`
	// UBootBuilds maps a config.txt filter ("all", "pi2", "pi3", "pi4") to
	// the U-Boot build in u-boot-rpi (usr/lib/u-boot/<build>/u-boot.bin).
	UBootBuilds map[string]string `yaml:"uboot_builds"`
	// WiFiFirmware is Debian's firmware-brcm80211; WiFiBlobs are the
	// lib/firmware paths (globs) taken from it into the root.
	WiFiFirmware Input    `yaml:"wifi_firmware"`
	WiFiBlobs    []string `yaml:"wifi_blobs"`
	// DTBs are paths below the kernel package's usr/lib/linux-image-<kver>/
	// (arm64: broadcom/bcm2837-rpi-3-b.dtb, …); they go to the FAT root.
	DTBs []string `yaml:"dtbs"`
	// Cmdline is the kernel command line on the Pi (consoles differ from
	// the profile's cmdline, which is for QEMU virt and UEFI machines).
	Cmdline string `yaml:"cmdline"`
	// Modules and InitrdModules are added to the profile's lists.
	Modules       []string `yaml:"modules"`
	InitrdModules []string `yaml:"initrd_modules"`
	// BootMiB is the FAT boot partition's size (default 256).
	BootMiB int `yaml:"boot_mib,omitempty"`
}

// Known output names.
var Outputs = []string{"squashfs", "vmlinuz", "initrd", "iso", "raw", "netboot", "rpi"}

// GOARCH and GOARM for the profile's arch.
func (p *Profile) GoArch() (goarch, goarm string) {
	switch p.Arch {
	case "armv7":
		return "arm", "7"
	}
	return p.Arch, ""
}

// DebArch is the Debian architecture name for the profile's arch.
func (p *Profile) DebArch() string {
	if p.Arch == "armv7" {
		return "armhf"
	}
	return p.Arch
}

// Wants reports whether output o is in the profile's output set.
func (p *Profile) Wants(o string) bool { return slices.Contains(p.Outputs, o) }

// Parse decodes a profile strictly (unknown keys are errors) and validates it.
func Parse(b []byte, name string) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	return &p, nil
}

// Load reads and parses a profile file. Relative extra: folders are made
// relative to the profile's folder.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	p, err := Parse(b, path)
	if err != nil {
		return nil, err
	}
	for i, d := range p.Extra {
		if !filepath.IsAbs(d) {
			p.Extra[i] = filepath.Join(filepath.Dir(path), d)
		}
	}
	return p, nil
}

// Validate checks the fields a build needs.
func (p *Profile) Validate() error {
	var errs []string
	switch p.Arch {
	case "amd64", "arm64", "armv7":
	default:
		errs = append(errs, fmt.Sprintf("arch %q: want amd64, arm64 or armv7", p.Arch))
	}
	if p.Version == "" {
		errs = append(errs, "version is empty")
	}
	if p.Kernel.Package == "" && p.Kernel.URL == "" {
		errs = append(errs, "kernel: set package (a Debian linux-image package) or url + sha256")
	}
	if p.Kernel.URL != "" && p.Kernel.SHA256 == "" {
		errs = append(errs, "kernel: url needs sha256")
	}
	if p.CACertificates.Package == "" && p.CACertificates.URL == "" {
		errs = append(errs, "ca_certificates: set package (ca-certificates) or url + sha256")
	}
	if p.K3s.URL == "" || p.K3s.SHA256 == "" || p.K3s.Version == "" {
		errs = append(errs, "k3s: version, url and sha256 must be pinned")
	}
	for _, o := range p.Outputs {
		if !slices.Contains(Outputs, o) {
			errs = append(errs, fmt.Sprintf("output %q: want one of %s", o, strings.Join(Outputs, ", ")))
		}
	}
	if p.Wants("iso") && p.Bootloader.UEFI == nil && p.Bootloader.Grub == nil {
		errs = append(errs, "output iso needs a UEFI loader: bootloader.uefi (systemd-boot) or bootloader.grub")
	}
	if g := p.Bootloader.Grub; g != nil && (g.Dir == "" || (g.Package == "" && g.URL == "")) {
		errs = append(errs, "bootloader.grub: set package (grub-efi-arm-bin) and dir (usr/lib/grub/arm-efi)")
	}
	if p.Wants("iso") && p.Bootloader.BIOS == nil && p.Arch == "amd64" {
		errs = append(errs, "output iso on amd64 needs bootloader.bios")
	}
	if p.Wants("rpi") {
		errs = append(errs, p.validateRPi()...)
	}
	if w := p.WiFi; w != nil {
		if w.Supplicant.Package == "" && w.Supplicant.URL == "" {
			errs = append(errs, "wifi.supplicant: set package (wpasupplicant)")
		}
		if len(w.Libraries) == 0 {
			errs = append(errs, "wifi.libraries: list the Debian packages holding wpa_supplicant's shared libraries (libc6, libssl3, libnl-3-200, …)")
		}
	}
	if a := p.Admin; a != nil {
		for _, f := range []struct {
			name, pkg string
			in        Input
		}{{"bash", "bash-static", a.Bash}, {"busybox", "busybox-static", a.Busybox}, {"sudo", "sudo", a.Sudo}} {
			if f.in.Package == "" && f.in.URL == "" {
				errs = append(errs, fmt.Sprintf("admin.%s: set package (%s)", f.name, f.pkg))
			}
		}
		if len(a.Libraries) == 0 {
			errs = append(errs, "admin.libraries: list the Debian packages holding sudo's shared libraries and PAM modules (libc6, libpam0g, libpam-modules, libaudit1, …)")
		}
	}
	for i, d := range p.Extra {
		if strings.TrimSpace(d) == "" {
			errs = append(errs, fmt.Sprintf("extra[%d] is empty: list folders laid out like the root (relative to the profile)", i))
		}
	}
	switch p.Compression {
	case "", "zstd", "xz", "gzip", "none":
	default:
		errs = append(errs, fmt.Sprintf("compression %q: want zstd, xz, gzip or none", p.Compression))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (p *Profile) validateRPi() []string {
	r := p.RPi
	if p.Arch != "arm64" && p.Arch != "armv7" {
		return []string{fmt.Sprintf("output rpi: Raspberry Pi images are arm64 or armv7, not %s", p.Arch)}
	}
	if r == nil {
		return []string{"output rpi needs an rpi: block (firmware, uboot, uboot_builds, dtbs)"}
	}
	var errs []string
	if r.Firmware.Package == "" && r.Firmware.URL == "" {
		errs = append(errs, "rpi.firmware: set package (raspi-firmware)")
	}
	if r.UBoot.Package == "" && r.UBoot.URL == "" {
		errs = append(errs, "rpi.uboot: set package (u-boot-rpi)")
	}
	if len(r.UBootBuilds) == 0 {
		errs = append(errs, "rpi.uboot_builds: name the U-Boot build per config.txt filter, e.g. {all: rpi_arm64}")
	}
	for f := range r.UBootBuilds {
		switch f {
		case "all", "pi2", "pi3", "pi4", "pi400", "cm4":
		default:
			errs = append(errs, fmt.Sprintf("rpi.uboot_builds: filter %q: want all, pi2, pi3, pi4, pi400 or cm4", f))
		}
	}
	if len(r.DTBs) == 0 {
		errs = append(errs, "rpi.dtbs: list the device trees of the supported boards")
	}
	if len(r.WiFiBlobs) > 0 && r.WiFiFirmware.Package == "" && r.WiFiFirmware.URL == "" {
		errs = append(errs, "rpi.wifi_blobs needs rpi.wifi_firmware (firmware-brcm80211)")
	}
	return errs
}
