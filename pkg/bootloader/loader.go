package bootloader

// Loader is the boot loader's A/B state as an upgrade sees it. Three
// boot loaders keep it: systemd-boot in counting entries on the ESP
// (SystemdBoot), keso's U-Boot script in keso/boot.env on the Raspberry
// Pi's FAT boot partition (UBoot) and keso's grub.cfg in grub/grubenv on
// the armv7 ESP (Grub, the same type as UBoot with GRUB's env file).
type Loader interface {
	// Slots reads what boots each slot.
	Slots() (BootSlots, error)
	// Retire withdraws slot from booting before it is rewritten; the
	// other slot must stay bootable.
	Retire(slot Slot) error
	// Arm installs the slot's kernel and initrd and puts it on trial;
	// it returns what it armed, for the log.
	Arm(spec ArmSpec) (string, error)
	// Commit makes the slot on trial the good one; a slot not on trial
	// is left as it is.
	Commit(slot Slot) error
	// Prefer makes a committed slot boot next, without a trial.
	Prefer(slot Slot) error
}

// SlotBoot is one slot as the boot loader knows it.
type SlotBoot struct {
	Present bool // something boots the slot
	Trial   bool // the slot is on trial (counting tries)
	Left    int  // tries left, when Trial
	Title   string
}

// BootSlots is the boot loader's view of both slots.
type BootSlots map[Slot]SlotBoot

// SystemdBoot is the Loader of systemd-boot entries on an ESP.
type SystemdBoot struct{ ESP ESP }

// Slots reads the entries in loader/entries.
func (s SystemdBoot) Slots() (BootSlots, error) {
	entries, err := Entries(s.ESP)
	if err != nil {
		return nil, err
	}
	return entrySlots(entries), nil
}

// entrySlots is the view of systemd-boot entries (the last entry of a
// slot wins, as entries are sorted by file name).
func entrySlots(entries []Entry) BootSlots {
	out := BootSlots{}
	for _, e := range entries {
		out[e.Slot] = SlotBoot{Present: true, Trial: e.Counting, Left: e.Left, Title: e.Title}
	}
	return out
}

// Retire removes the slot's entry.
func (s SystemdBoot) Retire(slot Slot) error {
	_, err := Retire(s.ESP, slot)
	return err
}

// Arm writes the slot's files and its counting entry.
func (s SystemdBoot) Arm(spec ArmSpec) (string, error) {
	e, err := Arm(s.ESP, spec)
	return e.File, err
}

// Commit drops the trial entry's counter.
func (s SystemdBoot) Commit(slot Slot) error { return Commit(s.ESP, slot) }

// Prefer gives the slot's entry the highest version.
func (s SystemdBoot) Prefer(slot Slot) error { return Prefer(s.ESP, slot) }

// ESPLoader is the boot loader whose A/B state is on a mounted ESP: GRUB
// (grub/grub.cfg is there: armv7) or systemd-boot's entries.
func ESPLoader(esp ESP) Loader {
	if _, err := esp.ReadFile(GrubConfigPath); err == nil {
		return Grub(esp)
	}
	return SystemdBoot{ESP: esp}
}

// LoaderOn is the boot loader whose state is on the mounted boot
// partition part of loc: U-Boot's environment on the Pi card, else
// ESPLoader's choice.
func LoaderOn(part ESP, loc Location) Loader {
	if loc.UBoot() {
		return UBoot{FS: part}
	}
	return ESPLoader(part)
}
