package upgrade

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// LockPath is the lock one keso upgrade holds while it runs.
const LockPath = "/var/lib/keso/upgrade.lock"

// ProgressPath is where keso upgrade records how far its download got, on
// the state partition: the node's agent reports it on its Node
// (keso.io/stage-progress) for the operator's status.
const ProgressPath = "/var/lib/keso/upgrade-progress.json"

// Progress is how far the current, or the last, download of an upgrade
// got.
type Progress struct {
	// SHA256 is the image being fetched: --sha256, or the digest a delta's
	// signed index names ("" when neither is known yet).
	SHA256 string `json:"sha256"`
	// Fetched counts the bytes on the node's disk, from this run and any
	// earlier one it resumed; Needed is what the download needs in all
	// (a delta's index and data file, or the image; 0 while unknown).
	Fetched int64     `json:"fetched"`
	Needed  int64     `json:"needed"`
	Delta   bool      `json:"delta,omitempty"`
	At      time.Time `json:"at"`
}

// LoadProgress reads the progress file; a missing file is no progress.
func LoadProgress(fsys StateFS) (Progress, error) {
	var p Progress
	if err := loadJSON(fsys, ProgressPath, &p); err != nil {
		return Progress{}, fmt.Errorf("load upgrade progress: %w", err)
	}
	return p, nil
}

// progressEvery is how often a download's progress is written at most.
const progressEvery = 2 * time.Second

// recordProgress returns the download's progress callback: it writes the
// progress file at most every progressEvery and when the download is
// complete. base is added to both counts (a delta's index, fetched
// before its data). A write that fails is logged once and the download
// goes on: the record is for the report, not for the upgrade.
func (u *Upgrader) recordProgress(sum string, base int64, delta bool) func(done, total int64) {
	var last time.Time
	failed := false
	return func(done, total int64) {
		now := u.now()
		if total > 0 && done < total && now.Sub(last) < progressEvery {
			return
		}
		last = now
		p := Progress{SHA256: strings.ToLower(sum), Fetched: base + done, Delta: delta, At: now.UTC()}
		if total > 0 {
			p.Needed = base + total
		}
		data, _ := json.Marshal(p)
		if err := u.State.WriteFileAtomic(ProgressPath, append(data, '\n'), 0o644); err != nil && !failed {
			failed = true
			u.logf("recording the download's progress: %v", err)
		}
	}
}

// clearProgress empties the progress record once the slot it was for is
// armed: the download is used up, and the node stops reporting it.
func (u *Upgrader) clearProgress() {
	if err := u.State.WriteFileAtomic(ProgressPath, []byte("{}\n"), 0o644); err != nil {
		u.logf("clearing the download's progress record: %v", err)
	}
}
