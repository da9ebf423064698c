// Package iso writes keso's live ISO: ISO 9660 with Rock Ridge, El Torito
// entries for BIOS (isolinux) and UEFI (a FAT efiboot.img with systemd-boot),
// and a hybrid MBR/GPT system area so the same file boots from a USB stick
// written with dd (recipe measured in NOTES.md). go-diskfs does the ISO;
// this package fixes its clock-dependent fields and writes the system area.
package iso

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/tree"
)

// Label is the volume identifier the initrd looks for.
const Label = bootloader.LabelLive

// Well-known paths inside the ISO (part of the boot contract).
const (
	PathSquashfs = "keso/root.squashfs"
	PathKernel   = "boot/vmlinuz"
	PathInitrd   = "boot/initrd"
	PathEFIBoot  = "boot/efiboot.img"
	PathIsolinux = "isolinux/isolinux.bin"
	PathCatalog  = "isolinux/boot.cat"
	// PathCatalogEFI is the boot catalog of UEFI-only ISOs (arm64).
	PathCatalogEFI = "boot/boot.cat"
)

const (
	block  = 2048
	sector = 512
	mib    = 1 << 20
)

// Options for Write.
type Options struct {
	Files      tree.Tree // contents (see the Path constants)
	BIOS       bool      // El Torito BIOS entry for isolinux.bin
	UEFI       bool      // El Torito EFI entry for efiboot.img
	Isohdpfx   string    // host path of isohdpfx.bin (hybrid MBR code); empty = no BIOS USB boot code
	EFIBootLen int64     // size of efiboot.img in bytes
	Epoch      int64
	Seed       string // for the disk signature and GUIDs
	TmpDir     string
}

// Write creates the ISO at out.
func Write(out string, o Options) error {
	ws, err := os.MkdirTemp(o.TmpDir, "iso-")
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer os.RemoveAll(ws)
	epoch := time.Unix(o.Epoch, 0)
	if err := o.Files.WriteDir(ws, epoch); err != nil {
		return fmt.Errorf("iso: stage: %w", err)
	}
	n, err := o.Files.Size()
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	os.Remove(out)
	b, err := file.CreateFromPath(out, n+int64(len(o.Files))*block+16*mib)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	fs, err := iso9660.Create(b, 0, 0, block, ws)
	if err != nil {
		b.Close()
		return fmt.Errorf("iso: create: %w", err)
	}
	et := &iso9660.ElTorito{BootCatalog: PathCatalog}
	if !o.BIOS {
		et.BootCatalog = PathCatalogEFI // no isolinux/ folder on UEFI-only ISOs
	}
	if o.BIOS {
		e := &iso9660.ElToritoEntry{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: PathIsolinux, BootTable: true}
		e.SetLoadSize(4)
		et.Entries = append(et.Entries, e)
	}
	if o.UEFI {
		et.Entries = append(et.Entries, &iso9660.ElToritoEntry{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: PathEFIBoot})
	}
	opts := iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: Label, Joliet: false}
	if len(et.Entries) > 0 {
		opts.ElTorito = et
	}
	if err := fs.Finalize(opts); err != nil {
		b.Close()
		return fmt.Errorf("iso: finalize: %w", err)
	}
	b.Close()
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer f.Close()
	if err := Normalize(f, epoch); err != nil {
		return fmt.Errorf("iso %s: %w", out, err)
	}
	if err := Hybrid(f, o); err != nil {
		return fmt.Errorf("iso %s: %w", out, err)
	}
	return f.Sync()
}

func readAt(f io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// volumeBlocks reads the primary volume descriptor's volume size.
func volumeBlocks(f io.ReaderAt) (int64, error) {
	pvd, err := readAt(f, 16*block, block)
	if err != nil {
		return 0, err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return 0, fmt.Errorf("no primary volume descriptor at sector 16")
	}
	return int64(binary.LittleEndian.Uint32(pvd[80:])), nil
}

// Hybrid pads the image, fixes the volume size and writes the MBR and a
// protective GPT listing the EFI System partition (efiboot.img).
func Hybrid(f *os.File, o Options) error {
	blocks, err := volumeBlocks(f)
	if err != nil {
		return err
	}
	size := blocks*block + 32*1024 // room for the backup GPT
	size = (size + mib - 1) / mib * mib
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("pad: %w", err)
	}
	total := size / sector
	vs := make([]byte, 8)
	binary.LittleEndian.PutUint32(vs, uint32(size/block))
	binary.BigEndian.PutUint32(vs[4:], uint32(size/block))
	if _, err := f.WriteAt(vs, 16*block+80); err != nil {
		return fmt.Errorf("volume size: %w", err)
	}
	bootLBA, efiLBA, err := catalog(f)
	if err != nil {
		return err
	}
	mbr := make([]byte, sector)
	if o.Isohdpfx != "" {
		code, err := os.ReadFile(o.Isohdpfx)
		if err != nil {
			return fmt.Errorf("hybrid MBR code: %w", err)
		}
		if len(code) < 432 {
			return fmt.Errorf("hybrid MBR code %s: %d bytes, want 432 (isohdpfx.bin from isolinux)", o.Isohdpfx, len(code))
		}
		copy(mbr, code[:432])
		isolinux, err := readAt(f, int64(bootLBA)*block, 0x44)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(isolinux[0x40:]) != 0x7078c0fb {
			return fmt.Errorf("isolinux.bin at block %d lacks the isohybrid signature (want isolinux.bin from Debian's isolinux)", bootLBA)
		}
		binary.LittleEndian.PutUint32(mbr[0x1b0:], bootLBA*4)
	}
	seed := seedBytes(o.Seed + "/mbr")
	copy(mbr[0x1b8:0x1bc], seed[:4])
	mbrEntry(mbr[0x1be:], 0x80, 0x00, 0, uint32(total))
	espStart, espLen := uint64(0), uint64(0)
	if o.UEFI && efiLBA != 0 {
		espStart = uint64(efiLBA) * 4
		espLen = uint64((o.EFIBootLen + sector - 1) / sector)
		mbrEntry(mbr[0x1ce:], 0x00, 0xef, uint32(espStart), uint32(espLen))
	}
	mbr[0x1fe], mbr[0x1ff] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("write MBR: %w", err)
	}
	if espLen > 0 {
		if err := writeGPT(f, uint64(total), espStart, espLen, o.Seed); err != nil {
			return err
		}
	}
	return nil
}

// catalog returns the load LBAs (2048-byte blocks) of the BIOS and EFI boot images.
func catalog(f io.ReaderAt) (bios, efi uint32, err error) {
	br, err := readAt(f, 17*block, block)
	if err != nil {
		return 0, 0, err
	}
	if br[0] != 0 || string(br[1:6]) != "CD001" || string(br[7:30]) != "EL TORITO SPECIFICATION" {
		return 0, 0, fmt.Errorf("no El Torito boot record at sector 17 (Joliet must be off with go-diskfs v1.9.4)")
	}
	cat, err := readAt(f, int64(binary.LittleEndian.Uint32(br[0x47:]))*block, block)
	if err != nil {
		return 0, 0, err
	}
	// validation entry (0), default entry (32), then section headers/entries
	if cat[32] == 0x88 && cat[1] == 0x00 {
		bios = binary.LittleEndian.Uint32(cat[32+8:])
	}
	platform := cat[1]
	if platform == 0xef && cat[32] == 0x88 {
		efi = binary.LittleEndian.Uint32(cat[32+8:])
	}
	for off := 64; off+64 <= len(cat); off += 32 {
		h := cat[off]
		if h != 0x90 && h != 0x91 {
			break
		}
		n := int(binary.LittleEndian.Uint16(cat[off+2:]))
		for i := 1; i <= n; i++ {
			e := cat[off+32*i:]
			if e[0] == 0x88 && cat[off+1] == 0xef {
				efi = binary.LittleEndian.Uint32(e[8:])
			}
			if e[0] == 0x88 && cat[off+1] == 0x00 && bios == 0 {
				bios = binary.LittleEndian.Uint32(e[8:])
			}
		}
		off += 32 * n
		if h == 0x91 {
			break
		}
	}
	return bios, efi, nil
}

func chs(lba uint32) [3]byte {
	const heads, sectors = 64, 32
	c := lba / (heads * sectors)
	if c > 1023 {
		return [3]byte{0xfe, 0xff, 0xff}
	}
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	return [3]byte{byte(h), byte(s) | byte((c>>2)&0xc0), byte(c)}
}

func mbrEntry(e []byte, status, typ byte, start, n uint32) {
	e[0] = status
	s := chs(start)
	copy(e[1:4], s[:])
	e[4] = typ
	end := chs(start + n - 1)
	copy(e[5:8], end[:])
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], n)
}
