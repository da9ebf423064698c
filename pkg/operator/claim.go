package operator

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
)

// ClaimAnnotation is the node annotation that holds a node's upgrade claim.
const ClaimAnnotation = "keso.io/upgrade"

// ResumeAnnotation on an OSVersion resumes a halted rollout when its value
// changes (any value, e.g. a timestamp).
const ResumeAnnotation = "keso.io/resume"

// Claim is the state of one node's upgrade, stored as JSON in the node's
// keso.io/upgrade annotation. It is written before any side effect.
type Claim struct {
	OSVersion  string           `json:"osVersion"`
	Target     string           `json:"target"`
	From       string           `json:"from,omitempty"`
	Phase      kesov1.NodePhase `json:"phase"`
	Since      time.Time        `json:"since"`
	Started    time.Time        `json:"started"`
	BootID     string           `json:"bootID,omitempty"`
	Cordoned   bool             `json:"cordoned,omitempty"` // we cordoned it, so we uncordon it
	Generation int64            `json:"generation"`
	Resume     string           `json:"resume,omitempty"`
	Message    string           `json:"message,omitempty"`
	// Blocked is when the node was first seen unable to get its Job
	// running (refused by the API server, or no pod); zero otherwise.
	Blocked time.Time `json:"blocked,omitzero"`
	// Warning is what the API server warned when it accepted the Job
	// (e.g. PodSecurity "would violate"), kept to explain a Job without pod.
	Warning string `json:"warning,omitempty"`
	// Regressed marks a Failed claim of a node that had been counted
	// Upgraded to Target and came back on another version: it halts every
	// generation of the rollout to that target until a resume.
	Regressed bool `json:"regressed,omitempty"`
}

// halts reports whether a Failed claim halts rollout r: one of this spec
// generation (any change to the spec retries the node), or a regression
// after success to the same target (only a resume retries it); and in
// both cases only until the keso.io/resume annotation changes.
func (c *Claim) halts(r Rollout) bool {
	if c == nil || c.OSVersion != r.Name || c.Phase != kesov1.NodeFailed || c.Resume != r.Resume {
		return false
	}
	return c.Generation == r.Generation || (c.Regressed && SameVersion(c.Target, r.Spec.Version))
}

// InFlight reports whether the claim is an upgrade that has started and not
// finished.
func (c *Claim) InFlight() bool {
	return c != nil && (c.Phase == kesov1.NodeDraining || c.Phase == kesov1.NodeUpgrading)
}

// ParseClaim reads a claim from node annotations; nil when there is none.
func ParseClaim(annotations map[string]string) (*Claim, error) {
	s, ok := annotations[ClaimAnnotation]
	if !ok || s == "" {
		return nil, nil
	}
	var c Claim
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("parse annotation %s: %w", ClaimAnnotation, err)
	}
	return &c, nil
}

// Encode renders the claim for the annotation.
func (c *Claim) Encode() string {
	b, _ := json.Marshal(c) // a struct of strings, times and ints cannot fail
	return string(b)
}

// OSImagePrefix starts the osImage that keso's /etc/os-release reports.
const OSImagePrefix = "keso "

// VersionFromOSImage returns the keso version in a node's
// status.nodeInfo.osImage ("keso 1.4.0" → "1.4.0"); "" for another OS.
func VersionFromOSImage(osImage string) string {
	if !strings.HasPrefix(osImage, OSImagePrefix) {
		return ""
	}
	v := strings.TrimSpace(strings.TrimPrefix(osImage, OSImagePrefix))
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	return v
}

// SameVersion compares versions ignoring a leading "v".
func SameVersion(a, b string) bool {
	return strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}
