// Package bootloader is keso's boot-loader facility: the three loaders
// that keep the A/B state (systemd-boot's counting entries on the ESP,
// keso's U-Boot script on the Raspberry Pi card, keso's grub.cfg on the
// armv7 ESP) behind one Loader interface (loader.go: slots, retire, arm,
// commit, prefer), where the running system keeps that state (Locate,
// LoaderOn), and the disk layout's names (the partition labels and the Pi
// card's partition numbers), spelled here only. For systemd-boot with
// boot counting (NOTES.md has the measured behaviour):
//
// Each slot has one entry file in loader/entries: slot-a.conf, or while a
// slot is on trial slot-b+LEFT-DONE.conf. systemd-boot renames a counting
// entry before it starts its kernel (+3 → +2-1 → +1-2 → +0-3) and sorts an
// entry with no tries left below every other entry, so after the last
// failed try the other slot boots. The running system commits a trial by
// renaming the entry to its name without the counter.
//
// Every change is made by writing new files under temporary names and
// renaming them, in an order where a power cut after any step still leaves
// a bootable, complete slot (see Arm).
//
// The package is pure over an ESP interface, so tests run on t.TempDir();
// Choose models systemd-boot's choice so tests can predict which slot boots.
package bootloader

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Slot names a root slot: "a" or "b".
type Slot string

const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Valid reports whether s is a or b.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }

// PartLabel is the GPT partition label of the slot's root.
func (s Slot) PartLabel() string { return rootLabelPrefix + strings.ToUpper(string(s)) }

// The names of keso's partitions and volumes (docs/boot.md), spelled here
// only: every writer and reader of a keso disk takes them from here.
const (
	LabelEFI        = "KESO_EFI" // GPT partition name of the ESP (FAT)
	LabelRootA      = rootLabelPrefix + "A"
	LabelRootB      = rootLabelPrefix + "B"
	LabelState      = "KESO_STATE" // GPT partition name, and ext4 label, of the state partition
	LabelBoot       = "KESO_BOOT"  // FAT volume label of the Raspberry Pi card's boot partition
	LabelLive       = "KESO"       // ISO 9660 volume identifier of the live medium
	rootLabelPrefix = "KESO_ROOT_"
)

// Partition numbers on the Raspberry Pi card's MBR (the disk keso.mbr=
// names), spelled here only.
const (
	MBRPartBoot  = 1 // FAT, LabelBoot: firmware, U-Boot, keso/boot.env, the slots' kernels and initrds
	MBRPartRootA = 2
	MBRPartRootB = 3
	MBRPartState = 4
)

// MBRPart is the card's partition number of the slot's root.
func (s Slot) MBRPart() int {
	if s == SlotB {
		return MBRPartRootB
	}
	return MBRPartRootA
}

// EntriesDir is where systemd-boot reads entries on the ESP.
const EntriesDir = "/loader/entries"

// DefaultTries is how often a new slot is tried before falling back.
const DefaultTries = 3

// Entry is one slot's boot entry as found on the ESP.
type Entry struct {
	Slot Slot
	// File is the entry's file name, e.g. "slot-b+2-1.conf".
	File string
	// Counting is true while the entry is on trial (has a +LEFT counter).
	Counting bool
	// Left and Done are the tries left and used, when Counting.
	Left, Done int
	// Version is the entry's generation; the higher one is preferred.
	Version int
	// Title, Linux, Initrd and Options are the entry's keys.
	Title, Linux, Initrd, Options string
}

var entryName = regexp.MustCompile(`^slot-([ab])(?:\+(\d+)(?:-(\d+))?)?\.conf$`)

// ParseName splits an entry file name; ok is false for files that are not
// keso slot entries (including temporary files).
func ParseName(name string) (slot Slot, counting bool, left, done int, ok bool) {
	m := entryName.FindStringSubmatch(name)
	if m == nil {
		return "", false, 0, 0, false
	}
	slot = Slot(m[1])
	if m[2] != "" {
		counting = true
		left, _ = strconv.Atoi(m[2])
		if m[3] != "" {
			done, _ = strconv.Atoi(m[3])
		}
	}
	return slot, counting, left, done, true
}

// FileName is the entry file name for a slot, with a counter when tries > 0.
func FileName(s Slot, counting bool, left, done int) string {
	switch {
	case !counting:
		return fmt.Sprintf("slot-%s.conf", s)
	case done == 0:
		return fmt.Sprintf("slot-%s+%d.conf", s, left)
	default:
		return fmt.Sprintf("slot-%s+%d-%d.conf", s, left, done)
	}
}

// EntrySpec is what an entry boots.
type EntrySpec struct {
	Slot    Slot
	Version int
	Title   string
	Options string // kernel command line; "keso.slot=<slot>" is added if missing
}

// KernelPath and InitrdPath are where a slot's kernel and initrd live on the ESP.
func KernelPath(s Slot) string { return fmt.Sprintf("/keso/%s/vmlinuz", s) }

// InitrdPath is the slot's initrd on the ESP.
func InitrdPath(s Slot) string { return fmt.Sprintf("/keso/%s/initrd", s) }

// Render returns the entry file's content.
func Render(e EntrySpec) []byte {
	opts := e.Options
	if !strings.Contains(" "+opts+" ", " keso.slot="+string(e.Slot)+" ") {
		opts = strings.TrimSpace(opts + " keso.slot=" + string(e.Slot))
	}
	title := e.Title
	if title == "" {
		title = fmt.Sprintf("keso (slot %s)", strings.ToUpper(string(e.Slot)))
	}
	return []byte(fmt.Sprintf("title %s\nsort-key keso\nversion %d\nlinux %s\ninitrd %s\noptions %s\n",
		title, e.Version, KernelPath(e.Slot), InitrdPath(e.Slot), opts))
}

// LoaderConf is loader/loader.conf: no menu, no editor, no auto entries and
// no default (a default would pin a slot even with no tries left).
const LoaderConf = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n"

// parseEntry reads an entry file's keys.
func parseEntry(name string, data []byte) (Entry, error) {
	slot, counting, left, done, ok := ParseName(name)
	if !ok {
		return Entry{}, fmt.Errorf("%s is not a slot entry", name)
	}
	e := Entry{Slot: slot, File: name, Counting: counting, Left: left, Done: done}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "title":
			e.Title = v
		case "version":
			e.Version, _ = strconv.Atoi(v)
		case "linux":
			e.Linux = v
		case "initrd":
			e.Initrd = v
		case "options":
			e.Options = v
		}
	}
	return e, nil
}

// ESP is the part of the EFI system partition's file system this package
// needs. host.FS rooted at the ESP's mount point satisfies it.
type ESP interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
	ReadDir(p string) ([]fs.DirEntry, error)
	Rename(oldp, newp string) error
	Remove(p string) error
}

// Entries lists the slot entries on the ESP, sorted by file name.
func Entries(esp ESP) ([]Entry, error) {
	des, err := esp.ReadDir(EntriesDir)
	if err != nil {
		return nil, fmt.Errorf("list boot entries: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if _, _, _, _, ok := ParseName(de.Name()); !ok {
			continue
		}
		data, err := esp.ReadFile(EntriesDir + "/" + de.Name())
		if err != nil {
			return nil, fmt.Errorf("read boot entry: %w", err)
		}
		e, err := parseEntry(de.Name(), data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// Choose returns the entry systemd-boot boots when no entry is pinned:
// entries with no tries left sort last; then the highest version; then the
// file name, descending (systemd-boot's order for equal sort-keys). ok is
// false when there is no entry.
func Choose(entries []Entry) (Entry, bool) {
	if len(entries) == 0 {
		return Entry{}, false
	}
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		ab, bb := a.Counting && a.Left == 0, b.Counting && b.Left == 0
		if ab != bb {
			return !ab
		}
		if a.Version != b.Version {
			return a.Version > b.Version
		}
		return a.File > b.File
	})
	return sorted[0], true
}

// Boot simulates what systemd-boot does at power-on: choose an entry and,
// if it is counting, rename it to consume a try. It returns the entry it
// boots (after the rename). Tests use it in place of firmware.
func Boot(esp ESP) (Entry, error) {
	entries, err := Entries(esp)
	if err != nil {
		return Entry{}, err
	}
	e, ok := Choose(entries)
	if !ok {
		return Entry{}, fmt.Errorf("boot: no slot entry in %s", EntriesDir)
	}
	if e.Counting && e.Left > 0 {
		name := FileName(e.Slot, true, e.Left-1, e.Done+1)
		if err := esp.Rename(EntriesDir+"/"+e.File, EntriesDir+"/"+name); err != nil {
			return Entry{}, fmt.Errorf("boot: count try: %w", err)
		}
		e.File, e.Left, e.Done = name, e.Left-1, e.Done+1
	}
	return e, nil
}
