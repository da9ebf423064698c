// Package status is the node's self-report: what booted, how each config
// phase went, the upgrade/trial state and k3s. The boot agent writes it to
// /run/keso/status.json; `keso status` reads and prints it.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/upgrade"
)

// Path is where the agent keeps the status.
const Path = "/run/keso/status.json"

// Status is the content of /run/keso/status.json.
type Status struct {
	Version string `json:"version"`
	Mode    string `json:"mode"` // live, disk, netboot
	Slot    string `json:"slot,omitempty"`
	// Upgrade is the A/B state: trial, tries left, last rollback.
	Upgrade *upgrade.BootStatus `json:"upgrade,omitempty"`
	// Health is the trial's health gate: "pending", "healthy", "failed: …".
	Health   string         `json:"health,omitempty"`
	Phases   []phase.Report `json:"phases,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Errors   []string       `json:"errors,omitempty"`
	K3s      K3s            `json:"k3s"`
	// K3sBinary is the image's k3s binary and how the build verified it
	// (K3sBinaryPath; `keso status` fills it in).
	K3sBinary *K3sBinary `json:"k3s_binary,omitempty"`
	// Checks is `keso check`'s table at boot: name → "ok" or the failure.
	Checks    map[string]string `json:"checks,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	// ConfigTrial is the config trial of this boot (keso config apply
	// --try), or the one this boot reverted.
	ConfigTrial *ConfigTrial `json:"config_trial,omitempty"`
	// Node is the Node this node annotated (keso.io/version, slot,
	// committed, rollback) with the kubelet's credentials, once it has.
	Node    string    `json:"node,omitempty"`
	Updated time.Time `json:"updated"`
}

// ConfigTrial is a config trial's state: "pending" (until Deadline),
// "confirmed", "failed" (the deadline passed: rebooting) or "reverted"
// (this boot returned to the previous config).
type ConfigTrial struct {
	State    string    `json:"state"`
	Source   string    `json:"source,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

// K3s is the supervisor's view of k3s.
type K3s struct {
	Role     string `json:"role,omitempty"`
	Running  bool   `json:"running"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit,omitempty"`
}

// FS is where status is read and written (host.FS satisfies it).
type FS interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
}

// Write stores s atomically.
func Write(fsys FS, s Status) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return fsys.WriteFileAtomic(Path, append(data, '\n'), 0o644)
}

// ErrNoStatus means the agent has not written a status (not a keso node,
// or too early in boot).
var ErrNoStatus = errors.New("no status: " + Path + " does not exist (is this a keso node?)")

// Read loads the status.
func Read(fsys FS) (Status, error) {
	var s Status
	data, err := fsys.ReadFile(Path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, ErrNoStatus
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read %s: %w", Path, err)
	}
	return s, nil
}

// Render prints s for a person.
func Render(w io.Writer, s Status) {
	fmt.Fprintf(w, "keso %s, %s mode", s.Version, s.Mode)
	if s.Slot != "" {
		fmt.Fprintf(w, ", slot %s", strings.ToUpper(s.Slot))
	}
	fmt.Fprintln(w)
	if u := s.Upgrade; u != nil {
		switch {
		case u.Trial:
			fmt.Fprintf(w, "trial:     yes, %d tries left, health %s\n", u.TriesLeft, orDash(s.Health))
		case u.Committed:
			fmt.Fprintln(w, "trial:     no (committed)")
		}
		if u.OtherSlot != "" {
			fmt.Fprintf(w, "other:     slot %s\n", u.OtherSlot)
		}
		if r := u.LastRollback; r != nil {
			fmt.Fprintf(w, "rollback:  %s → %s at %s: %s\n", r.FromVersion, r.ToVersion, r.At.Format(time.RFC3339), r.Reason)
		}
		if c := u.LastCommit; c != nil {
			fmt.Fprintf(w, "committed: %s on slot %s at %s\n", c.Version, c.Slot, c.At.Format(time.RFC3339))
		}
		if u.Interrupted != "" {
			fmt.Fprintf(w, "interrupted: %s\n", u.Interrupted)
		}
		if g := u.Staged; g != nil {
			fmt.Fprintf(w, "staged:    %s on slot %s at %s (keso upgrade --switch arms it)\n", g.ToVersion, g.Slot, g.StagedAt.Format(time.RFC3339))
		}
	}
	k := "stopped"
	if s.K3s.Running {
		k = "running"
	}
	fmt.Fprintf(w, "k3s:       %s %s, %d restarts", orDash(s.K3s.Role), k, s.K3s.Restarts)
	if s.K3s.LastExit != "" {
		fmt.Fprintf(w, ", last exit: %s", s.K3s.LastExit)
	}
	fmt.Fprintln(w)
	if b := s.K3sBinary; b != nil {
		fmt.Fprintf(w, "k3s bin:   %s\n", b)
		if b.Provenance == ProvenanceTestFixture {
			fmt.Fprintln(w, "warning: this image carries a keso TEST FIXTURE instead of k3s; it is not a product image")
		}
	}
	if len(s.Addresses) > 0 {
		fmt.Fprintf(w, "addresses: %s\n", strings.Join(s.Addresses, ", "))
	}
	for _, p := range s.Phases {
		state := "ok"
		switch {
		case p.Skipped != "":
			state = "skipped: " + p.Skipped
		case !p.OK():
			state = fmt.Sprintf("%d failed", len(p.Failures))
		}
		fmt.Fprintf(w, "phase %-10s %-4d changes  %s\n", p.Phase, len(p.Changes), state)
		for _, f := range p.Failures {
			where := f.Where
			if where == "" {
				where = f.Path
			}
			fmt.Fprintf(w, "  %s: %s\n", orDash(where), f.Err)
		}
	}
	for _, e := range s.Errors {
		fmt.Fprintf(w, "error:   %s\n", e)
	}
	for _, x := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
