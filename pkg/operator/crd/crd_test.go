package crd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManifestUpToDate fails when the committed CRD manifest or generated
// code is stale: run `go generate ./pkg/codegen`.
func TestManifestUpToDate(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale: run `go generate ./pkg/codegen`", ManifestPath)
	}
	fp, err := InputFingerprint(root)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(root, FingerprintPath))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(rec)) != fp {
		t.Errorf("pkg/generated was generated from other inputs (types, generator or module versions changed): run `go generate ./pkg/codegen`")
	}
}

func TestSchemaDocumentsEveryField(t *testing.T) {
	c, err := OSVersion()
	if err != nil {
		t.Fatal(err)
	}
	spec := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for name, p := range spec.Properties {
		if p.Description == "" {
			t.Errorf("spec.%s has no description", name)
		}
		for sub, q := range p.Properties {
			if q.Description == "" {
				t.Errorf("spec.%s.%s has no description", name, sub)
			}
		}
	}
	for _, req := range []string{"version", "image", "sha256"} {
		if !strings.Contains(strings.Join(spec.Required, ","), req) {
			t.Errorf("spec.required = %v lacks %s", spec.Required, req)
		}
	}
	if spec.Properties["version"].Pattern == "" || len(spec.Properties["window"].Properties["days"].Items.Schema.Enum) != 7 {
		t.Errorf("version pattern or window.days enum missing")
	}
	if got := spec.Properties["sha256"].AdditionalProperties.Schema.Pattern; got != SHA256Pattern {
		t.Errorf("spec.sha256 values pattern = %q, want %q", got, SHA256Pattern)
	}
	if spec.Properties["version"].Default != nil || spec.Properties["drain"].Default != nil {
		t.Errorf("defaults must be stripped (a default on a required field hides its absence)")
	}
}
