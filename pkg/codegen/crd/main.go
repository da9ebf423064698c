// Command crd writes the OSVersion CRD manifest
// (overlay/usr/share/keso/manifests/osversion-crd.yaml) from the generated
// OpenAPI model, and the input fingerprint that the up-to-date test checks.
// It is the second `go generate` step of pkg/codegen.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keso-os/keso/pkg/operator/crd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "codegen/crd:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := crd.RepoRoot()
	if err != nil {
		return err
	}
	b, err := crd.YAML()
	if err != nil {
		return err
	}
	out := filepath.Join(root, crd.ManifestPath)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fp, err := crd.InputFingerprint(root)
	if err != nil {
		return err
	}
	fpPath := filepath.Join(root, crd.FingerprintPath)
	if err := os.WriteFile(fpPath, []byte(fp+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", fpPath, err)
	}
	fmt.Println("wrote", out, "and", fpPath)
	return nil
}
