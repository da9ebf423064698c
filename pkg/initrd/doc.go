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
// The search rescans the block devices every 250 ms for keso.root_wait
// (default 45s, e.g. keso.root_wait=90s for slow USB); netboot retries DHCP
// 4 times; the download (pkg/fetch's Downloader) retries with backoff, at most
// 6 attempts in a row without progress, resuming with Range
// requests.
//
// In disk mode, when the raw image was written to a disk larger than the
// image, KESO_STATE (the last partition) is first extended to the end of
// the disk: the backup GPT is moved to the end, the partition entry grown,
// both headers rewritten with new CRCs and the kernel told with BLKPG; then
// the mounted ext4 is grown with EXT4_IOC_RESIZE_FS. Nothing is formatted.
//
// A failure returns an error that says what was looked for and what was
// found (the block devices with their partition and ISO labels, the links,
// the digests); cmd/keso-init prints it as one line and then either opens
// a rescue shell (keso.debug) or reboots after 15 seconds. What the stage
// found is recorded in /run/keso/initrd.json for the system stage.
//
// The package follows decide-then-do: the plan (mode, module load order,
// mount list for the writable layers) is computed by pure functions; the
// Stage applies it through the small Host interface, which pkg/host
// implements for real and tests fake.
package initrd
