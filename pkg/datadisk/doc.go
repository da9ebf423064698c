// Package datadisk applies `keso.disks`: data disks to format (ext4), mount
// and grow, selected by device path or by file-system label.
//
// Entry point (one phase, "disks"):
//
//	datadisk.Apply(cfg, fsys, datadisk.Real{}, rec)
//
// Devices: a path under /dev, or a label. keso has no udev, so
// /dev/disk/by-id and by-label links exist only if something else makes
// them; a label is found by reading the superblock of every block device
// listed in /sys/class/block (RAM disks excepted), and two devices with the
// same label are an error rather than a guess.
//
// Safety rule: a device is formatted only when it is empty — its first
// 72 KiB are all zero bytes. Detect recognises ext2/3/4, xfs, btrfs, vfat,
// iso9660, squashfs, swap, LUKS, LVM, and GPT and MBR partition tables;
// any other non-zero data counts as "unknown" and is not empty either.
// `force: true` formats over something that is not the wanted file system:
// a device that already holds ext4 (with the configured fs_label, when one
// is given) is kept, so that a forced disk is formatted once and not at
// every boot. A forced format first zeroes the first and last MiB, so that
// no stale partition table or superblock survives next to the new ext4.
//
// Mounting uses the file system found (ext2/3/4 mount as ext4); options are
// split into mount flags (ro, nosuid, nodev, noexec, noatime, nodiratime,
// relatime, sync) and file-system data (the rest). A target that already
// has this device mounted is left alone; one with another file system is a
// failure. `grow: true` resizes a mounted ext4 online to fill its device
// (EXT4_IOC_RESIZE_FS through host.Linux); it reports a change only when
// the block count grew.
//
// Formatting writes ext4 with go-diskfs (github.com/diskfs/go-diskfs):
// 64bit, extents, flex_bg, a journal; 1 KiB blocks with resize_inode on
// small devices, 4 KiB blocks without resize_inode from about 512 MiB up
// (the kernel converts such a file system to meta_bg when an online resize
// needs more group descriptors). Its output passes fsck.ext4 -fn, and
// TestQEMURealKernel mounts it under Debian's cloud kernel, writes to it and
// grows one from 1 GiB to 4 GiB online. go-diskfs zeroes the inode tables,
// so formatting writes about 4% of the device (measured on the host: 20 GiB
// in 3.8 s, 770 MB written).
//
// Kernel needs: ext4 (with jbd2, mbcache, crc16 and crc32c) is built into
// Debian's cloud-amd64 kernel but is a module on arm64 and armmp, so the
// arm images must ship and load ext4.ko and its dependencies.
//
// Plan is pure: it takes the config, what Probe found on each device and
// the mount table, and returns steps. Apply gathers that state through FS
// (/proc/self/mountinfo, /sys/class/block) and Host, runs the steps and
// reports each change and each failure with its config path
// (keso.disks[i]); one disk's failure does not stop the others.
package datadisk
