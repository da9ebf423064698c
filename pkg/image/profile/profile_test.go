package profile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/check"
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
		// Every artifact kind for every architecture (issue 16: armv7 too).
		for _, o := range []string{"squashfs", "vmlinuz", "initrd", "iso", "raw", "netboot"} {
			if !p.Wants(o) {
				t.Errorf("%s: outputs %v lack %s", f, p.Outputs, o)
			}
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
		{"iso without uefi", base + "outputs: [iso]\n", "output iso needs a UEFI loader: bootloader.uefi (systemd-boot) or bootloader.grub"},
		{"bad output", base + "outputs: [floppy]\n", `output "floppy"`},
		{"empty extra", base + "extra: [tree, '']\n", "extra[1] is empty"},
	} {
		_, err := Parse([]byte(tc.yaml), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadMakesExtraRelativeToTheProfile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "edge.yaml")
	y := "arch: amd64\nversion: 1\nkernel: {package: k}\nca_certificates: {package: c}\nk3s: {version: v, url: u, sha256: s}\nextra: [files, /abs/tree]\n"
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "files"), "/abs/tree"}; !slices.Equal(got.Extra, want) {
		t.Errorf("Extra = %q, want %q", got.Extra, want)
	}
}

// Every profile ships every module k3s's networking and storage ask for
// (check.K3sModules, what `keso check` and the boot agent look for), so the
// kernel's modprobe can find veth, xt_*, nft_*, ip_vs_* on any keso node.
// The builder then fails if the profile's kernel lacks one of them.
func TestShippedProfilesCarryK3sModules(t *testing.T) {
	files, _ := filepath.Glob("../../../images/*.yaml")
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		have := map[string]bool{}
		for _, m := range append(append([]string{}, p.Modules...), p.InitrdModules...) {
			have[strings.ReplaceAll(m, "-", "_")] = true
		}
		var missing []string
		for _, m := range check.K3sModules() {
			if !have[m] {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: modules lacks %s (k3s needs them; see pkg/check)", f, strings.Join(missing, ", "))
		}
	}
}
