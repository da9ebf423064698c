package upgrade

import (
	"fmt"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
)

// BootStatus is the upgrade side of `keso status` and /run/keso/status.json.
type BootStatus struct {
	Slot      bootloader.Slot `json:"slot"`
	Version   string          `json:"version"`
	Trial     bool            `json:"trial"`
	TriesLeft int             `json:"tries_left,omitempty"`
	// Committed is true when the running slot's entry has no counter.
	Committed    bool      `json:"committed"`
	OtherSlot    string    `json:"other_slot,omitempty"` // "b (keso 1.2.0)" or ""
	LastRollback *Rollback `json:"last_rollback,omitempty"`
	LastCommit   *Commit   `json:"last_commit,omitempty"`
	// Interrupted names an upgrade that stopped before its trial was
	// armed (a power cut while downloading or writing): nothing of it
	// boots, the running version stays; run keso upgrade again.
	Interrupted string `json:"interrupted,omitempty"`
	// Staged is an image keso upgrade --stage wrote to the other slot,
	// waiting for keso upgrade --switch.
	Staged *Staged `json:"staged,omitempty"`
}

// Assess runs early at boot. It reads the boot entries and the upgrade
// state and works out whether this boot is a trial, and whether a pending
// upgrade was rolled back (the bootloader booted the old slot after the new
// one used up its tries): then it records the rollback with its reason and
// clears the pending upgrade.
func Assess(esp bootloader.ESP, state StateFS, slot bootloader.Slot, version string, now time.Time) (BootStatus, error) {
	return AssessBoot(bootloader.SystemdBoot{ESP: esp}, state, slot, version, now)
}

// AssessBoot is Assess for any boot loader.
func AssessBoot(bl bootloader.Loader, state StateFS, slot bootloader.Slot, version string, now time.Time) (BootStatus, error) {
	bs := BootStatus{Slot: slot, Version: version}
	slots, err := bl.Slots()
	if err != nil {
		return bs, fmt.Errorf("assess boot: %w", err)
	}
	if s, ok := slots[slot]; ok {
		bs.Trial = s.Trial
		bs.TriesLeft = s.Left
		bs.Committed = s.Present && !s.Trial
	}
	other := slots[slot.Other()]
	if other.Present {
		bs.OtherSlot = fmt.Sprintf("%s (%s)", slot.Other(), other.Title)
	}
	st, err := LoadState(state)
	if err != nil {
		return bs, err
	}
	if p := st.Pending; p != nil {
		switch {
		case p.ToSlot != slot && !(p.ToSlot == slot.Other() && other.Trial):
			// The trial entry was never armed (Arm renames it into
			// place last): the upgrade stopped before it could boot.
			bs.Interrupted = fmt.Sprintf("the upgrade to %s (slot %s, started %s) stopped before its trial boot was armed; %s keeps running",
				p.ToVersion, p.ToSlot, p.ArmedAt.Format(time.RFC3339), version)
			st.Pending = nil
		case p.ToSlot != slot:
			reason := fmt.Sprintf("slot %s (%s) did not become healthy in %d tries", p.ToSlot, p.ToVersion, p.Tries)
			if n := len(p.Failures); n > 0 {
				reason += "; last failure: " + p.Failures[n-1]
			} else {
				reason += "; no trial boot reached the agent (kernel panic, hang, or unmountable root)"
			}
			st.LastRollback = &Rollback{FromVersion: p.ToVersion, ToVersion: version, Slot: p.ToSlot, Reason: reason, At: now.UTC()}
			st.Pending = nil
		case bs.Committed:
			// Committed earlier but the state was not cleared (power cut).
			st.LastCommit = &Commit{Version: version, Slot: slot, At: now.UTC()}
			st.Pending = nil
		}
		if st.Pending == nil {
			if err := SaveState(state, st); err != nil {
				return bs, err
			}
		}
	}
	bs.LastRollback, bs.LastCommit, bs.Staged = st.LastRollback, st.LastCommit, st.Staged
	return bs, nil
}

// MarkHealthy commits the running trial slot: the entry loses its counter
// and the pending upgrade becomes the last commit. On a slot that is not
// on trial it does nothing.
func MarkHealthy(esp bootloader.ESP, state StateFS, slot bootloader.Slot, version string, now time.Time) error {
	return MarkHealthyBoot(bootloader.SystemdBoot{ESP: esp}, state, slot, version, now)
}

// MarkHealthyBoot is MarkHealthy for any boot loader.
func MarkHealthyBoot(bl bootloader.Loader, state StateFS, slot bootloader.Slot, version string, now time.Time) error {
	if err := bl.Commit(slot); err != nil {
		return err
	}
	st, err := LoadState(state)
	if err != nil {
		return err
	}
	if st.Pending != nil && st.Pending.ToSlot == slot {
		st.Pending = nil
		st.LastCommit = &Commit{Version: version, Slot: slot, At: now.UTC()}
		return SaveState(state, st)
	}
	return nil
}

// RecordFailure notes why a trial boot gives up, just before the agent
// reboots into the next try, so the rollback can name it later.
func RecordFailure(state StateFS, reason string) error {
	st, err := LoadState(state)
	if err != nil {
		return err
	}
	if st.Pending == nil {
		return nil
	}
	st.Pending.Failures = append(st.Pending.Failures, reason)
	return SaveState(state, st)
}

// Rollback makes the other slot boot next (keso rollback). The other slot
// must have a committed entry.
func RollbackTo(esp bootloader.ESP, state StateFS, running bootloader.Slot, version, reason string, now time.Time) (bootloader.Slot, error) {
	return RollbackBoot(bootloader.SystemdBoot{ESP: esp}, state, running, version, reason, now)
}

// RollbackBoot is RollbackTo for any boot loader.
func RollbackBoot(bl bootloader.Loader, state StateFS, running bootloader.Slot, version, reason string, now time.Time) (bootloader.Slot, error) {
	other := running.Other()
	if err := bl.Prefer(other); err != nil {
		return "", fmt.Errorf("rollback to slot %s: %w", other, err)
	}
	st, err := LoadState(state)
	if err != nil {
		return other, err
	}
	st.LastRollback = &Rollback{FromVersion: version, Slot: running, Reason: reason, At: now.UTC()}
	return other, SaveState(state, st)
}
