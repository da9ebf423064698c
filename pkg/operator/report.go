package operator

import (
	"fmt"
	"strconv"
	"strings"
)

// Annotations a keso node writes on its own Node object (keso-init's agent,
// with the kubelet's credentials), once per boot as soon as the Node exists
// and again right after a trial boot commits. The operator reads them to
// tell a committed upgrade from a trial that may still roll back.
const (
	// VersionAnnotation is the running keso version, e.g. "2.0.0".
	VersionAnnotation = "keso.io/version"
	// SlotAnnotation is the running root slot, "a" or "b" (absent on
	// live and netboot systems).
	SlotAnnotation = "keso.io/slot"
	// CommittedAnnotation is "true" when the running slot is committed,
	// "false" during a trial boot.
	CommittedAnnotation = "keso.io/committed"
	// RollbackAnnotation is set when the last boot assessment rolled back:
	// "<from> -> <to>: <reason>".
	RollbackAnnotation = "keso.io/rollback"
	// StagedAnnotation is "<version> <sha256>" of the image keso upgrade
	// --stage wrote to the node's inactive slot, waiting for the switch;
	// the agent checks for it every few seconds.
	StagedAnnotation = "keso.io/staged"
	// StageProgressAnnotation is "<sha256> <fetched>/<needed>": the bytes
	// of the node's current (or last) upgrade download on its disk, of the
	// bytes it needs.
	StageProgressAnnotation = "keso.io/stage-progress"
)

// parseStaged reads keso.io/staged: the staged image's sha256 ("" when
// absent or malformed).
func parseStaged(v string) string {
	_, sum, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(sum))
}

// parseStageProgress reads keso.io/stage-progress; a malformed value is no
// progress.
func parseStageProgress(v string) (sum string, fetched, needed int64) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return "", 0, 0
	}
	a, b, ok := strings.Cut(f[1], "/")
	fe, err1 := strconv.ParseInt(a, 10, 64)
	ne, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || fe < 0 || ne < 0 {
		return "", 0, 0
	}
	return strings.ToLower(f[0]), fe, ne
}

// Committed reports whether node n runs target committed: its osImage is
// "keso <target>", it reports keso.io/version == target and
// keso.io/committed == "true". A node in its trial boot of target is not
// committed: it may still roll back.
func Committed(n Node, target string) bool {
	return SameVersion(n.Version, target) && SameVersion(n.Reported, target) && n.Committed
}

// Upgraded reports whether node n counts as upgraded to target: Ready and
// Committed. It is the only test of success the operator uses.
func Upgraded(n Node, target string) bool {
	return n.Ready && Committed(n, target)
}

// Regressed reports whether node n, once counted upgraded to target, now
// runs another version (by its osImage or its own report): the A/B fallback
// took it back after the upgrade had been counted a success.
func Regressed(n Node, target string) bool {
	return (n.Version != "" && !SameVersion(n.Version, target)) ||
		(n.Reported != "" && !SameVersion(n.Reported, target))
}

// commitState describes a node's own report for messages.
func commitState(n Node) string {
	s := fmt.Sprintf("%s=%q %s=%v", VersionAnnotation, n.Reported, CommittedAnnotation, n.Committed)
	if n.RollbackNote != "" {
		s += fmt.Sprintf(" %s=%q", RollbackAnnotation, n.RollbackNote)
	}
	return s
}

// KesoArch maps a node's architecture as Kubernetes reports it
// (status.nodeInfo.architecture, GOARCH names) to keso's name for it, the
// one the builder uses in artifact names (keso-<version>-<arch>.squashfs)
// and OSVersion spec.sha256 uses as keys: "arm" (32-bit ARM) is "armv7";
// amd64 and arm64 are the same in both. It is the one place this mapping
// lives: the operator applies it for "{arch}" in spec.image and for the
// spec.sha256 lookup.
func KesoArch(nodeArch string) string {
	if nodeArch == "arm" {
		return "armv7"
	}
	return nodeArch
}

// KesoArches are the architecture names spec.sha256 accepts.
var KesoArches = []string{"amd64", "arm64", "armv7"}

// checkArchKey explains a spec.sha256 key that is not a keso arch name.
func checkArchKey(k string) error {
	if k == "arm" {
		return fmt.Errorf("sha256 key %q: use armv7, keso's name for 32-bit ARM (Kubernetes reports those nodes as arm; the builder writes keso-<version>-armv7.squashfs)", k)
	}
	for _, a := range KesoArches {
		if k == a {
			return nil
		}
	}
	return fmt.Errorf("sha256 key %q: want a keso architecture name: amd64, arm64 or armv7", k)
}
