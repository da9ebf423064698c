// Package phase is the shared vocabulary of the boot agent's configuration
// phases (hostname, sysctl, files, users, network, disks, commands, k3s…):
// what a phase reports, and how its report is logged and kept.
//
// Each phase is a pure planner plus a thin applier. The applier reports
// one Change per thing it changed and one Failure per thing it could not do;
// a Failure names the config path that asked for it, so the runner can
// print the config's file:line next to the error (cloudconfig.Result.Position).
// A failing phase never stops the others.
package phase

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Change is one thing a phase changed, logged as one line.
type Change struct {
	Action string `json:"action"` // e.g. "write", "set", "load", "addr-add"
	Target string `json:"target"` // e.g. "/etc/hostname", "net.ipv4.ip_forward", "eth0"
	Detail string `json:"detail,omitempty"`
}

// Failure is one thing a phase could not do.
type Failure struct {
	// Path is the config path that asked for it ("write_files[2]"), or ""
	// when the failure is not tied to one value.
	Path string `json:"path,omitempty"`
	// Where is the config's file:line:col for Path, filled by the runner.
	Where string `json:"where,omitempty"`
	Err   string `json:"error"`
}

// Report is what one phase did.
type Report struct {
	Phase    string        `json:"phase"`
	Changes  []Change      `json:"changes,omitempty"`
	Failures []Failure     `json:"failures,omitempty"`
	Skipped  string        `json:"skipped,omitempty"` // why the phase did nothing, if it did not run
	Duration time.Duration `json:"duration_ns"`
}

// OK reports whether the phase had no failure.
func (r Report) OK() bool { return len(r.Failures) == 0 }

// Recorder collects one phase's changes and failures. Appliers take a
// *Recorder; it is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	report Report
	start  time.Time
	log    io.Writer // console; may be nil
	where  func(path string) string
}

// NewRecorder starts recording phase name. Each change and failure is also
// written to log as one line, if log is not nil. where maps a config path
// to "file:line:col" (nil: paths are printed as they are).
func NewRecorder(name string, log io.Writer, where func(path string) string) *Recorder {
	return &Recorder{report: Report{Phase: name}, start: time.Now(), log: log, where: where}
}

// Change records that the phase changed target.
func (r *Recorder) Change(action, target, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Changes = append(r.report.Changes, Change{Action: action, Target: target, Detail: detail})
	if r.log != nil {
		if detail != "" {
			fmt.Fprintf(r.log, "keso: %s: %s %s (%s)\n", r.report.Phase, action, target, detail)
		} else {
			fmt.Fprintf(r.log, "keso: %s: %s %s\n", r.report.Phase, action, target)
		}
	}
}

// Fail records that the phase could not do what the config at path asked.
func (r *Recorder) Fail(path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := Failure{Path: path, Err: err.Error()}
	if path != "" && r.where != nil {
		f.Where = r.where(path)
	}
	r.report.Failures = append(r.report.Failures, f)
	if r.log != nil {
		switch {
		case f.Where != "":
			fmt.Fprintf(r.log, "keso: %s: %s: error: %s: %v\n", r.report.Phase, f.Where, path, err)
		case path != "":
			fmt.Fprintf(r.log, "keso: %s: error: %s: %v\n", r.report.Phase, path, err)
		default:
			fmt.Fprintf(r.log, "keso: %s: error: %v\n", r.report.Phase, err)
		}
	}
}

// Skip records that the phase did not run, and why.
func (r *Recorder) Skip(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Skipped = reason
}

// Done returns the finished report.
func (r *Recorder) Done() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Duration = time.Since(r.start)
	return r.report
}

// MarshalReports renders reports as indented JSON, as kept in /run/keso/boot.json.
func MarshalReports(reports []Report) ([]byte, error) {
	return json.MarshalIndent(reports, "", "  ")
}
