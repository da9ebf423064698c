package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/verity"
)

// StatePath is where upgrade state lives on the node: on the state
// partition, so it survives the reboots of a trial.
const StatePath = "/var/lib/keso/upgrade.json"

// State is the upgrade bookkeeping kept across boots.
type State struct {
	// Pending is an armed upgrade not yet committed or given up.
	Pending *Pending `json:"pending,omitempty"`
	// LastRollback is the most recent upgrade that was rolled back.
	LastRollback *Rollback `json:"last_rollback,omitempty"`
	// LastCommit is the most recent upgrade that was kept.
	LastCommit *Commit `json:"last_commit,omitempty"`
	// Staged is an image written to the inactive slot by keso upgrade
	// --stage and not armed yet (keso upgrade --switch arms it).
	Staged *Staged `json:"staged,omitempty"`
}

// Staged is a verified image in the inactive slot, waiting to be armed.
type Staged struct {
	FromVersion string          `json:"from_version"` // the version that staged it
	ToVersion   string          `json:"to_version"`
	Slot        bootloader.Slot `json:"slot"`
	SHA256      string          `json:"sha256"` // the signed digest the slot's image has
	Size        int64           `json:"size"`
	Verity      verity.Record   `json:"verity"` // the slot's dm-verity tree, written and checked
	StagedAt    time.Time       `json:"staged_at"`
}

// Pending is an upgrade on trial.
type Pending struct {
	FromVersion string          `json:"from_version"`
	ToVersion   string          `json:"to_version"`
	FromSlot    bootloader.Slot `json:"from_slot"`
	ToSlot      bootloader.Slot `json:"to_slot"`
	Tries       int             `json:"tries"`
	ArmedAt     time.Time       `json:"armed_at"`
	// Failures are the reasons trial boots gave up, recorded by the agent
	// before it rebooted (a panic or a hang leaves no record).
	Failures []string `json:"failures,omitempty"`
}

// Rollback records an upgrade that was not kept.
type Rollback struct {
	FromVersion string          `json:"from_version"` // the version that failed
	ToVersion   string          `json:"to_version"`   // the version running again
	Slot        bootloader.Slot `json:"failed_slot"`
	Reason      string          `json:"reason"`
	At          time.Time       `json:"at"`
}

// Commit records an upgrade that was kept.
type Commit struct {
	Version string          `json:"version"`
	Slot    bootloader.Slot `json:"slot"`
	At      time.Time       `json:"at"`
}

// StateFS is where the state file is kept (host.FS satisfies it).
type StateFS interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
}

// LoadState reads the state file; a missing file is an empty state.
func LoadState(fsys StateFS) (State, error) {
	var s State
	if err := loadJSON(fsys, StatePath, &s); err != nil {
		return State{}, fmt.Errorf("load upgrade state: %w", err)
	}
	return s, nil
}

// loadJSON reads the JSON file p into v; a missing file leaves v as it is.
func loadJSON(fsys StateFS, p string, v any) error {
	data, err := fsys.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", p, err)
	}
	return nil
}

// SaveState writes the state file atomically.
func SaveState(fsys StateFS, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save upgrade state: %w", err)
	}
	if err := fsys.WriteFileAtomic(StatePath, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save upgrade state: %w", err)
	}
	return nil
}
