package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// UBoot is the Loader of keso's U-Boot script (the Raspberry Pi card):
// keso/boot.env on the FAT boot partition names the good slot (keso_good),
// a slot on trial (keso_try) and the boots it has left (keso_left). The
// script takes one try per boot from a trial with tries left and boots it,
// else it boots keso_good; it never clears keso_try, so after a failed
// trial boot.env still names it with keso_left=0, which is how Assess sees
// the rollback.
//
// U-Boot has no entries to give a slot a title, so keso/<slot>/title
// records what a slot holds: written when the slot is armed, removed when
// it is retired. A slot boots (Present) when it is the good one, the one
// on trial, or has a title; a card fresh from keso-build has slot a good
// and slot b without a title (its root is empty), so `keso rollback`
// refuses to switch to it.
//
// The decisions are pure functions on UBootEnv (ubootRetire,
// ubootPrefer, ubootSlots); UBoot reads and writes the files through the
// ESP interface (host.FS on the mounted partition), every write temp +
// fsync + rename.
//
// The same type serves GRUB on the armv7 ESP (Grub): grub.cfg keeps the
// same variables in grub/grubenv, and each armed slot's kernel command
// line goes into keso/<slot>/cmdline.cfg.
type UBoot struct {
	FS  ESP
	Env EnvFile // the zero value: U-Boot's keso/boot.env
}

// Grub is the Loader of keso's grub.cfg on an ESP (armv7 under UEFI).
func Grub(esp ESP) UBoot { return UBoot{FS: esp, Env: GrubEnvFile} }

// EnvFile is the counter file this boot loader's script keeps.
func (u UBoot) EnvFile() EnvFile {
	if u.Env.Path == "" {
		return UBootEnvFile
	}
	return u.Env
}

// UBootTitlePath is the title file of a slot on the boot partition.
func UBootTitlePath(s Slot) string { return fmt.Sprintf("/keso/%s/title", s) }

// ubootSlots is the view of boot.env; titled says which slots have a
// title file, title gives its text.
func ubootSlots(env UBootEnv, titles map[Slot]string) BootSlots {
	out := BootSlots{}
	for _, s := range []Slot{SlotA, SlotB} {
		t, titled := titles[s]
		sb := SlotBoot{Present: titled || env.Good == s || env.Try == s, Title: t}
		if env.Try == s {
			sb.Trial, sb.Left = true, env.Left
		}
		if sb.Present && sb.Title == "" {
			sb.Title = "keso"
		}
		out[s] = sb
	}
	return out
}

// ubootRetire is boot.env with slot withdrawn before it is rewritten:
// a trial of slot ends. The good slot cannot be retired (it is the one
// that boots when nothing else does).
func ubootRetire(env UBootEnv, slot Slot, envPath string) (UBootEnv, bool, error) {
	if env.Good == slot {
		return env, false, fmt.Errorf("slot %s is the good slot (keso_good in %s); refusing to leave the disk without a bootable slot", slot, envPath)
	}
	if env.Try != slot {
		return env, false, nil
	}
	env.Try, env.Left = "", 0
	return env, true, nil
}

// ubootPrefer is boot.env with slot booting next without a trial
// (keso rollback). A trial of the other slot is spent (keso_left=0) rather
// than cleared, so the next boot's Assess records it as rolled back.
func ubootPrefer(env UBootEnv, slot Slot, present bool) (UBootEnv, error) {
	if env.Try == slot {
		return env, fmt.Errorf("prefer slot %s: it is on trial (%d tries left); commit or wait for the trial to end", slot, env.Left)
	}
	if !present {
		return env, fmt.Errorf("prefer slot %s: %w (no %s on the boot partition)", slot, ErrNoEntry, UBootTitlePath(slot))
	}
	env.Good = slot
	if env.Try != "" {
		env.Left = 0
	}
	return env, nil
}

func (u UBoot) titles() (map[Slot]string, error) {
	out := map[Slot]string{}
	for _, s := range []Slot{SlotA, SlotB} {
		b, err := u.FS.ReadFile(UBootTitlePath(s))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", UBootTitlePath(s), err)
		}
		out[s] = strings.TrimSpace(string(b))
	}
	return out, nil
}

func (u UBoot) writeEnv(env UBootEnv) error { return u.EnvFile().Write(u.FS, env) }

// Slots reads boot.env and the slots' titles.
func (u UBoot) Slots() (BootSlots, error) {
	env, err := u.EnvFile().Read(u.FS)
	if err != nil {
		return nil, err
	}
	t, err := u.titles()
	if err != nil {
		return nil, err
	}
	return ubootSlots(env, t), nil
}

// Retire ends a trial of slot, then removes its title.
func (u UBoot) Retire(slot Slot) error {
	env, err := u.EnvFile().Read(u.FS)
	if err != nil {
		return err
	}
	env, changed, err := ubootRetire(env, slot, u.EnvFile().Path)
	if err != nil {
		return err
	}
	if changed {
		if err := u.writeEnv(env); err != nil {
			return err
		}
	}
	if err := u.FS.Remove(UBootTitlePath(slot)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", UBootTitlePath(slot), err)
	}
	return nil
}

// Arm writes the slot's title, kernel and initrd (EnvFile().Arm),
// then keso_try/keso_left: from there on the script tries it. On U-Boot
// the kernel command line is boot.scr's and spec.Options is not used; on
// GRUB it is written to keso/<slot>/cmdline.cfg.
func (u UBoot) Arm(spec ArmSpec) (string, error) {
	if spec.Tries > MaxScriptTries {
		// The script counts with setexpr, which writes hex, while
		// boot.env is written in decimal: one digit reads the same.
		return "", fmt.Errorf("arm slot %s: %d tries: %s's counter in %s holds 1 to %d", spec.Slot, spec.Tries, u.EnvFile().Name, u.EnvFile().Path, MaxScriptTries)
	}
	if err := u.FS.WriteFileAtomic(UBootTitlePath(spec.Slot), []byte(spec.Title+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	env, err := u.EnvFile().Arm(u.FS, spec)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s keso_try=%s keso_left=%d", u.EnvFile().Path, env.Try, env.Left), nil
}

// Commit makes the slot on trial keso_good; the slot that was good keeps
// booting on `keso rollback`, so it gets a title when it has none.
func (u UBoot) Commit(slot Slot) error {
	env, err := u.EnvFile().Read(u.FS)
	if err != nil {
		return fmt.Errorf("commit slot %s: %w", slot, err)
	}
	if env.Try != slot {
		return nil
	}
	old := env.Good
	if _, err := u.FS.ReadFile(UBootTitlePath(old)); errors.Is(err, fs.ErrNotExist) && old != slot {
		if err := u.FS.WriteFileAtomic(UBootTitlePath(old), []byte("keso\n"), 0o644); err != nil {
			return fmt.Errorf("commit slot %s: %w", slot, err)
		}
	}
	if err := u.writeEnv(env.Commit(slot)); err != nil {
		return fmt.Errorf("commit slot %s: %w", slot, err)
	}
	return nil
}

// Prefer makes slot keso_good.
func (u UBoot) Prefer(slot Slot) error {
	env, err := u.EnvFile().Read(u.FS)
	if err != nil {
		return fmt.Errorf("prefer slot %s: %w", slot, err)
	}
	t, err := u.titles()
	if err != nil {
		return fmt.Errorf("prefer slot %s: %w", slot, err)
	}
	if env.Good == slot && env.Try == "" {
		return nil
	}
	next, err := ubootPrefer(env, slot, ubootSlots(env, t)[slot].Present)
	if err != nil {
		return err
	}
	return u.writeEnv(next)
}
