package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
)

// The Linux side of the U-Boot A/B scheme (uboot.go) on a mounted boot
// partition (the Raspberry Pi's KESO_BOOT FAT): read keso/boot.env, arm a
// new slot, commit a healthy one. The boot script only ever rewrites the
// file to take a try; these functions write it whole (temp + fsync +
// rename through ESP.WriteFileAtomic).

// ReadUBootEnv reads keso/boot.env; a missing file is the script's default
// (slot a good, no trial).
func ReadUBootEnv(esp ESP) (UBootEnv, error) {
	b, err := esp.ReadFile(UBootEnvPath)
	if errors.Is(err, fs.ErrNotExist) {
		return UBootEnv{Good: SlotA}, nil
	}
	if err != nil {
		return UBootEnv{}, fmt.Errorf("read %s: %w", UBootEnvPath, err)
	}
	return ParseUBootEnv(b)
}

// ArmUBoot installs a new kernel and initrd for spec.Slot and puts the
// slot on trial for spec.Tries boots. The order keeps every prefix
// bootable: first any trial of spec.Slot is withdrawn (the script then
// boots the good slot), then the files are written, then the trial is
// armed. It refuses to replace the good slot, the one that boots when the
// trial fails.
func ArmUBoot(esp ESP, spec ArmSpec) (UBootEnv, error) {
	if !spec.Slot.Valid() {
		return UBootEnv{}, fmt.Errorf("arm slot %q: not a or b", spec.Slot)
	}
	env, err := ReadUBootEnv(esp)
	if err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	if env.Good == spec.Slot {
		return env, fmt.Errorf("arm slot %s: it is the good slot (the fallback); arm slot %s instead", spec.Slot, spec.Slot.Other())
	}
	if env.Try == spec.Slot {
		env.Try, env.Left = "", 0
		if err := esp.WriteFileAtomic(UBootEnvPath, env.Render(), 0o644); err != nil {
			return env, fmt.Errorf("arm slot %s: withdraw the old trial: %w", spec.Slot, err)
		}
	}
	if err := esp.WriteFileAtomic(KernelPath(spec.Slot), spec.Kernel, 0o644); err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	if err := esp.WriteFileAtomic(InitrdPath(spec.Slot), spec.Initrd, 0o644); err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	env = env.Arm(spec.Slot, spec.Tries)
	if err := esp.WriteFileAtomic(UBootEnvPath, env.Render(), 0o644); err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	return env, nil
}

// CommitUBoot makes slot the good one when it is the slot on trial (the
// agent calls it once the node is healthy). Committing the slot that is
// already good changes nothing.
func CommitUBoot(esp ESP, slot Slot) (UBootEnv, error) {
	env, err := ReadUBootEnv(esp)
	if err != nil {
		return env, fmt.Errorf("commit slot %s: %w", slot, err)
	}
	if env.Good == slot && env.Try != slot {
		return env, nil
	}
	if env.Try != slot {
		return env, fmt.Errorf("commit slot %s: it is not on trial (good %s, trial %q)", slot, env.Good, env.Try)
	}
	env = env.Commit(slot)
	if err := esp.WriteFileAtomic(UBootEnvPath, env.Render(), 0o644); err != nil {
		return env, fmt.Errorf("commit slot %s: %w", slot, err)
	}
	return env, nil
}
