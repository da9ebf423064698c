package crd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// ManifestPath is where the CRD manifest lives in the repository; the root
// file system carries it at /usr/share/keso/manifests.
const ManifestPath = "overlay/usr/share/keso/manifests/osversion-crd.yaml"

// FingerprintPath records the hash of the code generator's inputs at the
// last `go generate ./pkg/codegen`.
const FingerprintPath = "pkg/generated/INPUTS.sha256"

// generatorInputs are the files whose content decides the generated code.
var generatorInputs = []string{
	"pkg/apis/keso.io/v1/types.go",
	"pkg/apis/keso.io/v1/doc.go",
	"pkg/codegen/main.go",
	"pkg/codegen/boilerplate.go.txt",
}

// generatorModules are the modules whose versions decide the generated code.
var generatorModules = regexp.MustCompile(`(?m)^\s*(github\.com/rancher/wrangler/v3|k8s\.io/code-generator|k8s\.io/kube-openapi|k8s\.io/gengo/v2) (\S+)`)

// InputFingerprint hashes the generator's inputs: the API types, the
// generator program and the generator modules' versions in go.mod. Running
// the full generator takes minutes, so the up-to-date test compares this
// fingerprint instead, plus the CRD manifest byte for byte.
func InputFingerprint(root string) (string, error) {
	h := sha256.New()
	for _, p := range generatorInputs {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return "", fmt.Errorf("fingerprint generator input: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("fingerprint generator input: %w", err)
	}
	var mods []string
	for _, m := range generatorModules.FindAllSubmatch(gomod, -1) {
		mods = append(mods, string(m[1])+"@"+string(m[2]))
	}
	sort.Strings(mods)
	for _, m := range mods {
		fmt.Fprintln(h, m)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RepoRoot walks up from the working directory to the keso module root.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			regexp.MustCompile(`(?m)^module github\.com/keso-os/keso\s*$`).Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the keso repository root: no go.mod for github.com/keso-os/keso above the working directory")
		}
		dir = parent
	}
}
