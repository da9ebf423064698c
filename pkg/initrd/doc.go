// Package initrd is the initrd stage of keso-init: it runs as PID 1 from the
// initramfs, mounts the API file systems, loads the kernel modules named in
// /etc/keso/initrd-modules (with their dependencies from modules.dep), finds
// the root file system in one of three modes, mounts it read-only on
// /sysroot, sets up the writable layers and switches root into it.
//
// Modes, chosen from the kernel command line (see docs/boot.md):
//
//   - disk (keso.slot=a|b): the GPT partition labelled KESO_ROOT_A or
//     KESO_ROOT_B holds a raw squashfs. /var lives on the ext4 partition
//     KESO_STATE, which is grown to fill its partition on first boot.
//   - live (keso.live): the ISO 9660 volume labelled KESO, on a CD or on a
//     USB stick written with dd, carries /keso/root.squashfs.
//   - netboot (keso.root=http(s)://…): the first link with a carrier gets a
//     DHCPv4 lease, the squashfs is downloaded into /run (verified against
//     keso.root_sha256= when given) and loop-mounted.
//
// With none of them the stage looks for KESO_ROOT_A, then for a KESO ISO.
//
// The package follows decide-then-do: the plan (mode, module load order,
// mount list for the writable layers) is computed by pure functions; the
// Stage applies it through the small Host interface, which pkg/host
// implements for real and tests fake.
package initrd
