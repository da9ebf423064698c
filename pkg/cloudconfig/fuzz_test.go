package cloudconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keso-os/keso/pkg/cmdline"
)

// seeds adds every file under testdata/seeds/<dir> and the config examples.
func seeds(f *testing.F, dir string) {
	for _, pattern := range []string{filepath.Join("testdata", "seeds", dir, "*"), filepath.Join("..", "..", "config-examples", "*.yaml")} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzLoad: no input may panic the decoder, the merge or the validator, and
// whatever it accepts must render and read back.
func FuzzLoad(f *testing.F) {
	seeds(f, "yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Load(Source{Name: "defaults", Data: []byte("keso:\n  labels: {a: b}\n")}, Source{Name: "fuzz", Data: data})
		for _, d := range r.Diagnostics {
			_ = d.String()
		}
		checkEffectiveIsValid(t, r)
	})
}

// FuzzCmdline: no command line may panic the parser or the config builder.
func FuzzCmdline(f *testing.F) {
	for _, s := range []string{
		"", "quiet", `keso.hostname="a b"`, "keso.sysctl.net.ipv4.ip_forward=1 k3os.password=x",
		"keso.k3s.config.a.b=c keso.network.interfaces=eth0", `"`, "keso.=1 keso.. k3os", "keso.keso.k3os.x=1",
	} {
		f.Add([]byte(s))
	}
	seeds(f, "cmdline")
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = cmdline.Parse(string(data))
		r := Load(Source{Name: "cmdline", Cmdline: true, Data: data})
		checkEffectiveIsValid(t, r)
	})
}

// checkEffectiveIsValid: the effective config keeps only what validated, so
// rendering it and loading it again must read back the same config and give
// no error that the original did not already report (cross-field errors such
// as an agent without a server stay, since nothing is dropped for them).
func checkEffectiveIsValid(t *testing.T, r Result) {
	t.Helper()
	out, err := r.YAML()
	if err != nil {
		t.Fatalf("YAML() of a loaded config: %v", err)
	}
	again := LoadFile("effective.yaml", out)
	before := map[string]bool{}
	for _, d := range r.Diagnostics.Errors() {
		before[d.Path+": "+d.Message] = true
	}
	for _, d := range again.Diagnostics.Errors() {
		if !before[d.Path+": "+d.Message] {
			t.Fatalf("effective config has a new error: %v\n%s", d, out)
		}
	}
	if !reflect.DeepEqual(normalize(again.Config), normalize(r.Config)) {
		t.Fatalf("effective config reads back differently:\n%+v\n%+v\n%s", again.Config, r.Config, out)
	}
}

// normalize makes empty and nil collections compare equal.
func normalize(c Config) string {
	out, _ := yaml.Marshal(c)
	return string(out)
}
