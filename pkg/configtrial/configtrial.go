// Package configtrial applies a node's config as a trial, the way an OS
// upgrade is tried: `keso config apply --try DURATION FILE` keeps the
// previous /keso/config.yaml beside the new one and reboots; the trial boot
// runs the new config and, unless the trial is confirmed within DURATION
// (`keso config confirm`, or automatically once the node is healthy and
// still has the address it was managed on), reboots; a boot that finds a
// trial it already began returns to the previous config before the config
// is read. A power cut at any moment therefore ends on the old config or,
// once confirmed, on the new one; never on a half-written file.
//
// The trial's files live on the state partition, beside the config:
//
//	/keso/state/keso/config-trial/trial.json     the Trial record
//	/keso/state/keso/config-trial/previous.yaml  the config it replaced
//
// Decide is the pure planner of the boot-time step; Begin, AtBoot and
// Confirm are its thin appliers over Files (host.FS).
package configtrial

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/keso-os/keso/pkg/datasource"
)

// Paths in the running system (the state partition is mounted at /keso/state).
const (
	ConfigPath   = datasource.StateConfigPath // /keso/state/keso/config.yaml
	Dir          = "/keso/state/keso/config-trial"
	RecordPath   = Dir + "/trial.json"
	PreviousPath = Dir + "/previous.yaml"
)

// States of a Trial.
const (
	Pending   = "pending"   // applied; confirmed by nobody yet
	Confirmed = "confirmed" // kept; the record is being cleaned up
)

// Trial is the record of one config trial.
type Trial struct {
	State string `json:"state"`
	// Try is how long the trial boot waits for a confirmation.
	Try Duration `json:"try"`
	// AutoConfirm confirms the trial once the node is healthy (k3s up and
	// Ready, keso.upgrade.health_checks pass) and still has every
	// Management address.
	AutoConfirm bool `json:"auto_confirm"`
	// Management are the addresses the node was managed on when the trial
	// began (the SSH session's server address, else every global address).
	Management []string `json:"management,omitempty"`
	// HadPrevious says whether a config.yaml existed; without one a revert
	// removes the trial's config.
	HadPrevious bool      `json:"had_previous"`
	Applied     time.Time `json:"applied"`
	// Boots counts the trial boots begun: the first boot of a pending
	// trial runs it, any later one reverts it.
	Boots int `json:"boots"`
	// Source is the file the config came from, for messages.
	Source string `json:"source,omitempty"`
}

// Duration is a time.Duration kept as its string form ("2m0s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Files is what the appliers need of the node's file system (host.FS).
type Files interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
	Remove(p string) error
}

// ErrNoTrial is returned by Load and Confirm when no trial is pending.
var ErrNoTrial = errors.New("no config trial is pending")

// MinTry and MaxTry bound a trial's duration: shorter than a boot cannot be
// confirmed; longer leaves a locked-out box alone for too long.
const (
	MinTry = 30 * time.Second
	MaxTry = 24 * time.Hour
)

// Load reads the trial record; ErrNoTrial when there is none (or it is
// confirmed).
func Load(f Files) (*Trial, error) {
	b, err := f.ReadFile(RecordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoTrial
	}
	if err != nil {
		return nil, err
	}
	var t Trial
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read %s: %w (remove it to end the trial on the config as it is)", RecordPath, err)
	}
	if t.State != Pending {
		return &t, ErrNoTrial
	}
	return &t, nil
}

// Begin starts a trial of next: it keeps the current config (current; nil
// when there is none) as previous.yaml, writes the record, and only then
// replaces config.yaml, each write atomic and synced. A power cut before
// the last write leaves the old config in place with a record that reverts
// to it; after it, the next boot is the trial boot.
func Begin(f Files, current, next []byte, t Trial) error {
	if old, err := Load(f); err == nil {
		return fmt.Errorf("a config trial of %s is pending since %s: confirm it (keso config confirm) or let it end first",
			old.Source, old.Applied.Format(time.RFC3339))
	}
	if d := time.Duration(t.Try); d < MinTry || d > MaxTry {
		return fmt.Errorf("trial duration %s: want between %s and %s (a trial boot needs time to come up and be confirmed)", d, MinTry, MaxTry)
	}
	t.State, t.Boots, t.HadPrevious = Pending, 0, current != nil
	if current != nil {
		if err := f.WriteFileAtomic(PreviousPath, current, 0o600); err != nil {
			return fmt.Errorf("config trial: keep the previous config: %w", err)
		}
	}
	rec, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := f.WriteFileAtomic(RecordPath, rec, 0o600); err != nil {
		return fmt.Errorf("config trial: %w", err)
	}
	if err := f.WriteFileAtomic(ConfigPath, next, 0o600); err != nil {
		return fmt.Errorf("config trial: write the new config: %w (the next boot returns to the previous one)", err)
	}
	return nil
}

// Action is what a boot does about a trial.
type Action int

const (
	None   Action = iota // no trial: boot the config as it is
	Run                  // first boot of a pending trial: run it, start the clock
	Revert               // a trial boot was begun before and not confirmed
	Clean                // a confirmed trial's record is left: remove it
)

func (a Action) String() string {
	return [...]string{"none", "run", "revert", "clean"}[a]
}

// Decide is the boot-time planner: t is the record (nil when none).
func Decide(t *Trial) Action {
	switch {
	case t == nil:
		return None
	case t.State != Pending:
		return Clean
	case t.Boots == 0:
		return Run
	default:
		return Revert
	}
}

// Outcome is what AtBoot did.
type Outcome struct {
	Action Action
	Trial  *Trial // the record, for Run and Revert
}

// AtBoot runs before the config is read: it begins the trial's boot
// (counting it first, so that a crash or power cut in it reverts) or
// returns to the previous config. A record it cannot parse is reverted
// when previous.yaml exists, else removed: a broken record must never
// keep a box on an unconfirmed config.
func AtBoot(f Files) (Outcome, error) {
	t, err := Load(f)
	switch {
	case errors.Is(err, ErrNoTrial) && t == nil:
		return Outcome{Action: None}, nil
	case errors.Is(err, ErrNoTrial):
		// confirmed: fall through to Decide
	case err != nil:
		if _, perr := f.ReadFile(PreviousPath); perr == nil {
			t = &Trial{State: Pending, Boots: 1, HadPrevious: true, Source: "(unreadable record)"}
		} else {
			return Outcome{Action: Clean}, cleanup(f, err)
		}
	}
	out := Outcome{Action: Decide(t), Trial: t}
	switch out.Action {
	case Run:
		t.Boots++
		rec, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			return out, err
		}
		if err := f.WriteFileAtomic(RecordPath, rec, 0o600); err != nil {
			// The boot cannot be counted: do not run the trial
			// uncounted, return to the previous config instead.
			out.Action = Revert
			return out, revert(f, t, fmt.Errorf("count the trial boot: %w", err))
		}
	case Revert:
		return out, revert(f, t, nil)
	case Clean:
		return out, cleanup(f, nil)
	}
	return out, nil
}

// revert puts the previous config back, then ends the trial.
func revert(f Files, t *Trial, cause error) error {
	if t.HadPrevious {
		prev, err := f.ReadFile(PreviousPath)
		if err != nil {
			return errors.Join(cause, fmt.Errorf("config trial: revert: %w", err))
		}
		if err := f.WriteFileAtomic(ConfigPath, prev, 0o600); err != nil {
			return errors.Join(cause, fmt.Errorf("config trial: revert: %w", err))
		}
	} else if err := f.Remove(ConfigPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.Join(cause, fmt.Errorf("config trial: revert: %w", err))
	}
	return cleanup(f, cause)
}

// cleanup removes the record, then the previous config.
func cleanup(f Files, cause error) error {
	errs := []error{cause}
	for _, p := range []string{RecordPath, PreviousPath} {
		if err := f.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("config trial: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Confirm keeps the trial's config: the record is marked confirmed (one
// atomic write, so a power cut after it keeps the new config), then
// removed with the previous config.
func Confirm(f Files) (*Trial, error) {
	t, err := Load(f)
	if err != nil {
		return nil, err
	}
	t.State = Confirmed
	rec, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := f.WriteFileAtomic(RecordPath, rec, 0o600); err != nil {
		return nil, fmt.Errorf("config trial: confirm: %w", err)
	}
	return t, cleanup(f, nil)
}

// Reachable says whether every management address of the trial is among
// the node's current addresses.
func (t *Trial) Reachable(addrs []string) (bool, string) {
	have := map[string]bool{}
	for _, a := range addrs {
		have[a] = true
	}
	for _, m := range t.Management {
		if !have[m] {
			return false, fmt.Sprintf("management address %s is not on any link (have %v)", m, addrs)
		}
	}
	return true, ""
}
