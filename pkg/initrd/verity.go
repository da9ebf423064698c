package initrd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/verity"
)

// VerityName is the device-mapper name of the verified root.
const VerityName = "keso-root"

// verityRoot opens a disk slot through dm-verity when this initrd carries
// the slot's record (keso-build and `keso upgrade` append it), then reads
// the whole root once through the mapping, so that a corrupt block fails
// this boot, naming the slot and the offset, before anything runs from
// it: on a trial boot that is a failed try (the boot loader's counter
// falls back); on any boot the corrupt root is never mounted. It returns
// the device to mount. Without a record (a disk made before keso had
// verity) the slot is mounted as it is, and a line says so.
func (s *Stage) verityRoot(plan Plan, dev string, info *Info) (string, error) {
	b, err := os.ReadFile(s.path("/" + verity.RecordPath))
	if errors.Is(err, fs.ErrNotExist) {
		s.logf("slot %s: this initrd has no dm-verity record (/%s): the root is not verified", info.Slot, verity.RecordPath)
		return dev, nil
	}
	if err != nil {
		return "", fmt.Errorf("slot %s: read the dm-verity record: %w", info.Slot, err)
	}
	// An empty or overwritten slot says so before anything else.
	if what := sniff(dev); what != "a squashfs" { // dev is a path under Root already
		return "", fmt.Errorf("%s root: %s holds %s, not a squashfs (an empty or overwritten slot?); %s", info.Mode, dev, what, s.fallBack(plan, info.Slot))
	}
	rec, err := verity.ParseRecord(b)
	if err != nil {
		return "", fmt.Errorf("slot %s: the initrd's %w; not booting an unverifiable root", info.Slot, err)
	}
	if rec.Slot != info.Slot {
		return "", fmt.Errorf("slot %s: the initrd carries slot %s's dm-verity record (a boot entry that mixes up the slots?); not booting it", info.Slot, rec.Slot)
	}
	t, err := rec.Tree()
	if err != nil {
		return "", fmt.Errorf("slot %s: %w", info.Slot, err)
	}
	mapped, err := s.Host.OpenVerity(VerityName, dev, t)
	if err != nil {
		return "", fmt.Errorf("slot %s: dm-verity over %s: %w (are dm_verity and its dependencies in the initrd?)", info.Slot, dev, err)
	}
	start := s.Now()
	if off, err := readAll(s.path(mapped), rec.ImageSize); err != nil {
		return "", fmt.Errorf("slot %s on %s fails its dm-verity check at byte %d (block %d of %d): the slot is corrupt; not booting it (%v); %s",
			info.Slot, dev, off, off/verity.DefaultBlockSize, rec.DataBlocks, err, s.fallBack(plan, info.Slot))
	}
	s.logf("slot %s: %d MiB verified by dm-verity (root hash %.16s…) in %s", info.Slot, rec.ImageSize>>20, rec.RootHash,
		s.Now().Sub(start).Round(time.Millisecond))
	info.Verity, info.RootDevice = rec.RootHash, mapped
	return mapped, nil
}

// espMount is where fallBack mounts the boot partition.
const espMount = "/run/keso/esp"

// fallBack runs after the booting slot failed its check. A slot on trial
// needs nothing: this failed boot is a failed try, and the boot loader's
// counter returns to the good slot. The good slot itself failing would
// boot again and again, so the boot loader is told to prefer the other
// slot, when it has something to boot there (pkg/upgrade's Prefer, as
// `keso rollback` does). It returns what it did, for the console.
func (s *Stage) fallBack(plan Plan, slot string) string {
	cur := bootloader.Slot(slot)
	other := cur.Other()
	dev, loc, err := s.bootPartition(plan)
	if err != nil {
		return fmt.Sprintf("cannot fall back to slot %s: %v", other, err)
	}
	mp := s.path(espMount)
	if err := s.fs().MkdirAll(espMount, 0o755); err != nil {
		return fmt.Sprintf("cannot fall back to slot %s: %v", other, err)
	}
	// The initrd carries nls_cp437 and nls_iso8859_1 only: name them, as
	// the kernel's default iocharset may be one it lacks (EINVAL).
	if err := s.Host.Mount(dev, mp, "vfat", 0, "codepage=437,iocharset=iso8859-1"); err != nil {
		return fmt.Sprintf("cannot fall back to slot %s: mount the boot partition %s: %v", other, dev, err)
	}
	defer func() {
		if err := s.Host.Unmount(mp); err != nil {
			s.logf("unmount %s: %v", mp, err)
		}
	}()
	bl := bootloader.LoaderOn(host.FS{Root: mp}, loc)
	slots, err := bl.Slots()
	switch {
	case err != nil:
		return fmt.Sprintf("cannot fall back to slot %s: %v", other, err)
	case slots[cur].Trial:
		return fmt.Sprintf("slot %s is on trial: this is a failed try, and the boot loader returns to slot %s when the tries are spent", cur, other)
	case !slots[other].Present || slots[other].Trial:
		return fmt.Sprintf("slot %s has nothing committed to boot: no slot to fall back to", other)
	}
	if err := bl.Prefer(other); err != nil {
		return fmt.Sprintf("cannot fall back to slot %s: %v", other, err)
	}
	return fmt.Sprintf("slot %s boots next (%s, the boot loader now prefers it)", other, slots[other].Title)
}

// bootPartition is the partition with the A/B boot state (the plan's
// keso.mbr decides, as bootloader.Location does for the running system).
func (s *Stage) bootPartition(plan Plan) (dev string, loc bootloader.Location, err error) {
	loc = bootloader.Location{MBRDisk: plan.MBRDisk}
	if loc.UBoot() {
		name, ok := s.findMBRPart(plan.MBRDisk, MBRPartBoot)
		if !ok {
			return "", loc, fmt.Errorf("no partition %d on the disk with MBR signature %s", MBRPartBoot, plan.MBRDisk)
		}
		return s.devPath(name), loc, nil
	}
	devs, err := host.ScanBlock(s.path("/"))
	if err != nil {
		return "", loc, err
	}
	d, ok := FindPartLabel(devs, ESPPartLabel)
	if !ok {
		return "", loc, fmt.Errorf("no partition labelled %s", ESPPartLabel)
	}
	return s.devPath(d.Name), loc, nil
}

// readAll reads the first size bytes of dev; on a read error it returns
// the offset of the first block that cannot be read.
func readAll(dev string, size int64) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if err := readFull(f, buf[:n], off); err != nil {
			// Find the block: dm-verity fails whole blocks.
			for b := off; b < off+n; b += verity.DefaultBlockSize {
				if err := readFull(f, buf[:min(verity.DefaultBlockSize, off+n-b)], b); err != nil {
					return b, err
				}
			}
			return off, err
		}
	}
	return 0, nil
}

// readFull reads len(b) bytes at off; a short read is an error.
func readFull(f *os.File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
