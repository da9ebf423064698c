package profile

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedProfilesLoad checks every profile in images/ parses strictly and validates.
func TestShippedProfilesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../../images/*.yaml")
	if len(files) < 3 {
		t.Fatalf("found %d profiles in images/, want amd64, arm64 and armv7", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		seen[p.Arch] = true
		if !p.Wants("squashfs") || !p.Wants("netboot") {
			t.Errorf("%s: outputs %v lack squashfs or netboot", f, p.Outputs)
		}
	}
	for _, a := range []string{"amd64", "arm64", "armv7"} {
		if !seen[a] {
			t.Errorf("no profile for %s", a)
		}
	}
}

func TestParseErrors(t *testing.T) {
	base := "arch: amd64\nversion: 1\nkernel: {package: k}\nca_certificates: {package: c}\nk3s: {version: v, url: u, sha256: s}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", base + "colour: red\n", "field colour not found"},
		{"bad arch", strings.Replace(base, "amd64", "mips", 1), `arch "mips"`},
		{"unpinned k3s", strings.Replace(base, "sha256: s", "sha256: ''", 1), "k3s: version, url and sha256 must be pinned"},
		{"iso without uefi", base + "outputs: [iso]\n", "output iso needs bootloader.uefi"},
		{"bad output", base + "outputs: [floppy]\n", `output "floppy"`},
	} {
		_, err := Parse([]byte(tc.yaml), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
