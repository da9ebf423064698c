package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
)

// The Linux side of the boot-script A/B schemes (U-Boot's uboot.go, GRUB's
// grub.go) on a mounted FAT partition (the Raspberry Pi's KESO_BOOT, the
// armv7 ESP): read the counter file, arm a new slot, commit a healthy one.
// The boot script only ever rewrites the file to take a try; these
// functions write it whole (temp + fsync + rename through
// ESP.WriteFileAtomic).

// EnvFile is where and in which form a boot script keeps the A/B counter
// (UBootEnv) on its FAT partition: U-Boot's keso/boot.env (UBootEnvFile) or
// GRUB's grub/grubenv (GrubEnvFile).
type EnvFile struct {
	Name   string // the boot loader, for messages: "U-Boot", "GRUB"
	Path   string
	Parse  func([]byte) (UBootEnv, error)
	Render func(UBootEnv) []byte
	// SlotFiles are files written beside an armed slot's kernel (GRUB:
	// its command line); nil when the script has none.
	SlotFiles func(ArmSpec) map[string][]byte
}

// UBootEnvFile is the U-Boot script's keso/boot.env.
var UBootEnvFile = EnvFile{Name: "U-Boot", Path: UBootEnvPath, Parse: ParseUBootEnv, Render: UBootEnv.Render}

// GrubEnvFile is grub.cfg's grub/grubenv, with each slot's command line in
// keso/<slot>/cmdline.cfg.
var GrubEnvFile = EnvFile{Name: "GRUB", Path: GrubEnvPath, Parse: ParseGrubEnv, Render: UBootEnv.RenderGrub,
	SlotFiles: func(spec ArmSpec) map[string][]byte {
		return map[string][]byte{GrubCmdlinePath(spec.Slot): GrubCmdline(spec.Options)}
	}}

// Read reads the env file; a missing file is the script's default (slot a
// good, no trial).
func (f EnvFile) Read(esp ESP) (UBootEnv, error) {
	b, err := esp.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return UBootEnv{Good: SlotA}, nil
	}
	if err != nil {
		return UBootEnv{}, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return f.Parse(b)
}

// Write replaces the env file whole (temp + fsync + rename).
func (f EnvFile) Write(esp ESP, env UBootEnv) error {
	if err := esp.WriteFileAtomic(f.Path, f.Render(env), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}

// Arm installs a new kernel and initrd for spec.Slot and puts the slot on
// trial for spec.Tries boots. The order keeps every prefix bootable: first
// any trial of spec.Slot is withdrawn (the script then boots the good
// slot), then the files are written, then the trial is armed. It refuses
// to replace the good slot, the one that boots when the trial fails.
func (f EnvFile) Arm(esp ESP, spec ArmSpec) (UBootEnv, error) {
	if !spec.Slot.Valid() {
		return UBootEnv{}, fmt.Errorf("arm slot %q: not a or b", spec.Slot)
	}
	env, err := f.Read(esp)
	if err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	if env.Good == spec.Slot {
		return env, fmt.Errorf("arm slot %s: it is the good slot (the fallback); arm slot %s instead", spec.Slot, spec.Slot.Other())
	}
	if env.Try == spec.Slot {
		env.Try, env.Left = "", 0
		if err := f.Write(esp, env); err != nil {
			return env, fmt.Errorf("arm slot %s: withdraw the old trial: %w", spec.Slot, err)
		}
	}
	files := map[string][]byte{KernelPath(spec.Slot): spec.Kernel, InitrdPath(spec.Slot): spec.Initrd}
	if f.SlotFiles != nil {
		for p, b := range f.SlotFiles(spec) {
			files[p] = b
		}
	}
	for _, p := range sortedKeys(files) {
		if err := esp.WriteFileAtomic(p, files[p], 0o644); err != nil {
			return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
		}
	}
	env = env.Arm(spec.Slot, spec.Tries)
	if err := f.Write(esp, env); err != nil {
		return env, fmt.Errorf("arm slot %s: %w", spec.Slot, err)
	}
	return env, nil
}

// Commit makes slot the good one when it is the slot on trial (the agent
// calls it once the node is healthy). Committing the slot that is already
// good changes nothing.
func (f EnvFile) Commit(esp ESP, slot Slot) (UBootEnv, error) {
	env, err := f.Read(esp)
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
	if err := f.Write(esp, env); err != nil {
		return env, fmt.Errorf("commit slot %s: %w", slot, err)
	}
	return env, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
