package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
)

// K3sBinaryPath is where the image says which k3s binary it carries and how
// keso-build verified it (written by keso-build, read by `keso status`).
const K3sBinaryPath = "/usr/share/keso/k3s.json"

// Provenance of the k3s binary in an image.
const (
	// ProvenancePinned: its sha256 is the one pinned in the image profile.
	ProvenancePinned = "pinned"
	// ProvenanceReleaseSums: downloaded and verified against the release's
	// published sha256sum-<arch>.txt (the profile pins no sha256).
	ProvenanceReleaseSums = "release-sha256sum"
	// ProvenanceUserSupplied: given with keso-build --k3s and not the pinned
	// release; nothing verified it.
	ProvenanceUserSupplied = "user-supplied"
	// ProvenanceTestFixture: a keso test fixture standing in for k3s
	// (keso-build --test-fixture). Such an image must never ship.
	ProvenanceTestFixture = "test-fixture"
)

// K3sBinary is the k3s binary an image was built with: the build manifest's
// "k3s" and the image's K3sBinaryPath.
type K3sBinary struct {
	SHA256 string `json:"sha256"`
	// Version is the k3s release ("v1.31.4+k3s1"), "" when unknown.
	Version string `json:"version,omitempty"`
	// Provenance is one of the Provenance constants.
	Provenance string `json:"provenance"`
	// Verified says how, for a person.
	Verified string `json:"verified"`
	// Source is the URL or the --k3s file (the build manifest only: a
	// host path would make the image depend on where the input lay).
	Source string `json:"source,omitempty"`
}

// String is the one line `keso status` prints.
func (k K3sBinary) String() string {
	v := k.Version
	if v == "" {
		v = "version unknown"
	}
	sum := k.SHA256
	if len(sum) > 16 {
		sum = sum[:16] + "…"
	}
	return fmt.Sprintf("%s, sha256 %s, %s: %s", v, sum, k.Provenance, k.Verified)
}

// ReadK3sBinary reads the image's K3sBinaryPath; nil without error when the
// image has none (built before keso-build wrote it).
func ReadK3sBinary(fsys FS) (*K3sBinary, error) {
	data, err := fsys.ReadFile(K3sBinaryPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var k K3sBinary
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("read %s: %w", K3sBinaryPath, err)
	}
	return &k, nil
}
