package cloudconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples: every file in config-examples/ is a complete, valid config
// with no errors and no warnings.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config-examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(files), 10; got < want {
		t.Fatalf("found %d examples, want at least %d", got, want)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			r := LoadFile(name, data)
			for _, d := range r.Diagnostics {
				t.Errorf("%s", d)
			}
			if _, err := r.YAML(); err != nil {
				t.Errorf("show: %v", err)
			}
		})
	}
}
