// Package blockdev says what a block device holds, from its first bytes:
// the file system (ext2/3/4, xfs, btrfs, vfat, iso9660, squashfs), swap,
// an encrypted or LVM volume, a partition table, or nothing, and the
// volume label, the way blkid names them. It is pure (Detect takes the
// first bytes; ProbeLabel reads ISO 9660 and FAT labels, FAT's type and
// size, through an io.ReaderAt, and is the one reader of those labels:
// Detect uses it too); the devices themselves are listed by
// host.ScanBlock. Data disks (pkg/datadisk), the datasources' cidata and
// config-2 volumes (pkg/datasource) and the initrd's search for the live
// medium read labels with it.
package blockdev
