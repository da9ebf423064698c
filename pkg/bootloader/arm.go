package bootloader

import (
	"errors"
	"fmt"
)

// ArmSpec is a new slot to try.
type ArmSpec struct {
	Slot    Slot
	Kernel  []byte
	Initrd  []byte
	Title   string
	Options string
	// Tries is how often the slot is tried before falling back (default 3).
	Tries int
}

// Arm installs a new kernel and initrd for spec.Slot and makes it the
// preferred entry, on trial for spec.Tries boots. The order makes every
// prefix safe to interrupt:
//
//  1. remove spec.Slot's old entry (the slot being replaced is not the one
//     running, so the running slot's entry still boots);
//  2. write the kernel and the initrd (temp + fsync + rename);
//  3. write the new entry under a temporary name, version = highest + 1;
//  4. rename it to slot-X+N.conf: from here on the firmware tries it.
//
// Arm refuses to replace the slot whose entry is the only other one left,
// so that a bootable entry always remains.
func Arm(esp ESP, spec ArmSpec) (Entry, error) {
	if !spec.Slot.Valid() {
		return Entry{}, fmt.Errorf("arm: invalid slot %q", spec.Slot)
	}
	tries := spec.Tries
	if tries <= 0 {
		tries = DefaultTries
	}
	version, err := Retire(esp, spec.Slot)
	if err != nil {
		return Entry{}, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	if err := esp.WriteFileAtomic(KernelPath(spec.Slot), spec.Kernel, 0o644); err != nil {
		return Entry{}, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	if err := esp.WriteFileAtomic(InitrdPath(spec.Slot), spec.Initrd, 0o644); err != nil {
		return Entry{}, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	es := EntrySpec{Slot: spec.Slot, Version: version + 1, Title: spec.Title, Options: spec.Options}
	tmp := EntriesDir + "/.slot-" + string(spec.Slot) + ".conf.new"
	if err := esp.WriteFileAtomic(tmp, Render(es), 0o644); err != nil {
		return Entry{}, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	name := FileName(spec.Slot, true, tries, 0)
	if err := esp.Rename(tmp, EntriesDir+"/"+name); err != nil {
		return Entry{}, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	data, _ := esp.ReadFile(EntriesDir + "/" + name)
	return parseEntry(name, data)
}

// Retire removes slot's boot entry, so that nothing boots the slot while
// it is being rewritten; the other slot's entry must be there and bootable,
// or Retire refuses. It returns the highest entry version seen, for the
// next entry. Upgrades call it before they write the slot, and Arm again.
func Retire(esp ESP, slot Slot) (version int, err error) {
	entries, err := Entries(esp)
	if err != nil {
		return 0, err
	}
	otherOK := false
	for _, e := range entries {
		version = max(version, e.Version)
		if e.Slot == slot.Other() && (!e.Counting || e.Left > 0 || e.Done > 0) {
			otherOK = true
		}
	}
	if !otherOK {
		return 0, fmt.Errorf("slot %s has no boot entry; refusing to leave the ESP without a bootable entry", slot.Other())
	}
	for _, e := range entries {
		if e.Slot == slot {
			if err := esp.Remove(EntriesDir + "/" + e.File); err != nil {
				return 0, fmt.Errorf("remove slot %s's old entry: %w", slot, err)
			}
		}
	}
	return version, nil
}

// Commit marks the trial entry of slot as good: it is renamed to its name
// without a counter. Committing a slot that is not on trial does nothing.
func Commit(esp ESP, slot Slot) error {
	entries, err := Entries(esp)
	if err != nil {
		return fmt.Errorf("commit slot %s: %w", slot, err)
	}
	for _, e := range entries {
		if e.Slot == slot && e.Counting {
			if err := esp.Rename(EntriesDir+"/"+e.File, EntriesDir+"/"+FileName(slot, false, 0, 0)); err != nil {
				return fmt.Errorf("commit slot %s: %w", slot, err)
			}
			return nil
		}
	}
	return nil
}

// ErrNoEntry is returned when a slot has no entry to switch to.
var ErrNoEntry = errors.New("no boot entry")

// Prefer makes slot the entry that boots next, without a trial (keso
// rollback): its entry gets the highest version. The slot's entry must
// exist and be committed.
func Prefer(esp ESP, slot Slot) error {
	entries, err := Entries(esp)
	if err != nil {
		return fmt.Errorf("prefer slot %s: %w", slot, err)
	}
	var target *Entry
	version := 0
	for i, e := range entries {
		version = max(version, e.Version)
		if e.Slot == slot {
			target = &entries[i]
		}
	}
	if target == nil {
		return fmt.Errorf("prefer slot %s: %w", slot, ErrNoEntry)
	}
	if target.Counting {
		return fmt.Errorf("prefer slot %s: it is on trial (%d tries left); commit or wait for the trial to end", slot, target.Left)
	}
	if c, _ := Choose(entries); c.Slot == slot {
		return nil
	}
	es := EntrySpec{Slot: slot, Version: version + 1, Title: target.Title, Options: target.Options}
	if err := esp.WriteFileAtomic(EntriesDir+"/"+target.File, Render(es), 0o644); err != nil {
		return fmt.Errorf("prefer slot %s: %w", slot, err)
	}
	return nil
}
