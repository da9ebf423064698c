// Package blockdev says what a block device holds, from its first bytes:
// the file system (ext2/3/4, xfs, btrfs, vfat, iso9660, squashfs), swap,
// an encrypted or LVM volume, a partition table, or nothing, and the
// volume label, the way blkid names them. It is pure (Detect takes the
// bytes); the devices themselves are listed by host.ScanBlock. Data disks
// (pkg/datadisk) and the initrd's search for the live medium read labels
// with it.
package blockdev
