// Package verity builds, checks and maps dm-verity hash trees: the root
// file system proves itself block by block as the kernel reads it, against
// one root hash that the signed release carries.
//
// What is where:
//
//   - tree.go: the on-disk format and the pure builder and checker.
//     [Build] hashes a data image (an [io.ReaderAt]) into a hash tree written
//     to an [io.WriterAt], [Verify] checks data against a tree and a root hash
//     in pure Go and names the first bad block. Format version 1, as the
//     kernel's Documentation/admin-guide/device-mapper/verity.rst describes
//     it: every hash is sha256(salt || block); level 0 holds the hashes of the
//     data blocks, 128 to a 4096-byte hash block, each level above hashes the
//     one below until one block remains, and the root hash is the hash of
//     that block. The levels are stored top first (the one-block level at
//     the start of the tree), each hash block zero-padded. With a single data
//     block there are no levels and the root hash is that block's hash.
//   - superblock.go: the 512-byte superblock veritysetup(8) puts in front of
//     the tree ("verity\0\0", little-endian fields), parsed strictly so a
//     parsed superblock writes back to the same bytes.
//   - table.go: the device-mapper table line ("0 <sectors> verity 1 …") and
//     the optional arguments keso uses (none: see [Table]).
//   - dm.go, dm_linux.go: creating and removing the mapping through the
//     device-mapper ioctls on /dev/mapper/control, without libdevmapper or
//     veritysetup (the node has neither). dm.go encodes and decodes the
//     ioctl buffers (pure, tested without root); dm_linux.go is the small
//     set of system calls behind the [dmSys] interface, and makes the
//     /dev/dm-N node when nothing (devtmpfs, udev) did.
//
// veritysetup (cryptsetup-bin) is only the reference the tests check
// against: Build's output verifies with "veritysetup verify", and
// "veritysetup format" output verifies with Verify and has the same root
// hash and the same bytes for the same salt and UUID.
//
// Side effects: the device-mapper ioctls that map a verity device (dm.go
// on Linux).
package verity
