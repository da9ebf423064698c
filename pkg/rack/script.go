package rack

import (
	"fmt"
	"strings"
)

// ChainScript is what every iPXE first fetches (DHCP hands it out as the
// boot file): it names the machine, its architecture and platform.
func ChainScript(base string) []byte {
	return []byte("#!ipxe\n" +
		"# keso netboot: ask for this machine's own script\n" +
		"chain " + base + "/m/${netX/mac:hexhyp}/boot.ipxe?arch=${buildarch}&platform=${platform}&uuid=${uuid}\n")
}

// MachineScript is the iPXE script for one machine's boot: its mode
// decides between booting keso (live or install) and the local disk.
func MachineScript(base string, m Machine, a Arch, platform string) []byte {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "# keso netboot: %s (%s) from %s, mode %s\n", m.MAC, m.Hostname, m.File, m.Mode)
	if m.Mode == Local {
		// UEFI: return to the firmware, which boots the next entry (the
		// disk). BIOS: boot the first disk's MBR.
		b.WriteString("echo keso netboot: booting the local disk\n")
		b.WriteString("iseq ${platform} efi && exit 1 ||\n")
		b.WriteString("sanboot --no-describe --drive 0x80 || exit 1\n")
		return []byte(b.String())
	}
	mb := base + "/m/" + m.MAC + "/" + a.Name
	args := []string{
		"keso.root=" + mb + "/rootfs.squashfs",
		"keso.root_sha256=" + a.RootSHA256,
	}
	if a.Cmdline != "" {
		args = append(args, a.Cmdline)
	}
	// The config URL names the arch and the UUID the script was chosen
	// by, so the config comes from the same file, filled the same way.
	cfg := mb + "/config"
	if m.UUID != "" {
		cfg += "?uuid=" + m.UUID
	}
	args = append(args, "keso.config_url="+cfg, "keso.report_url="+base+"/m/"+m.MAC+"/report")
	if m.Mode == Install {
		args = append(args, "keso.install.device="+m.Device, "keso.install.silent")
	}
	if platform == "efi" {
		// The kernel's EFI stub loads the initrd by name from iPXE.
		args = append(args, "initrd=initrd")
	}
	fmt.Fprintf(&b, "kernel %s/vmlinuz %s\n", mb, strings.Join(args, " "))
	fmt.Fprintf(&b, "initrd %s/initrd\n", mb)
	b.WriteString("boot\n")
	return []byte(b.String())
}
