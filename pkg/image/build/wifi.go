package build

import (
	"context"
	"debug/elf"
	"fmt"
	"path/filepath"

	"github.com/keso-os/keso/pkg/image/sharedlib"
	"github.com/keso-os/keso/pkg/image/tree"
)

// SupplicantPath is where the root carries wpa_supplicant (pkg/wifi runs it).
const SupplicantPath = "usr/sbin/wpa_supplicant"

// addWiFi adds the profile's WPA supplicant to the root: Debian's
// wpa_supplicant at usr/sbin, the shared libraries of its DT_NEEDED closure
// at their Debian multiarch paths (found in the profile's library
// packages), and the program interpreter at its PT_INTERP path. It returns
// a one-line description ("" when the profile has no wifi block).
func (b *builder) addWiFi(ctx context.Context, t tree.Tree) (string, error) {
	w := b.prof.WiFi
	if w == nil {
		return "", nil
	}
	debArch := b.prof.DebArch()
	triplet, err := sharedlib.Triplet(debArch)
	if err != nil {
		return "", fmt.Errorf("wifi: %w", err)
	}
	const inDeb = "sbin/wpa_supplicant"
	dir, desc, err := b.unpackProgram(ctx, "wifi.supplicant", w.Supplicant, inDeb, nil)
	if err != nil {
		return "", err
	}
	prog := filepath.Join(dir, inDeb)
	trees, err := b.libraryTrees(ctx, "wifi.libraries", w.Libraries)
	if err != nil {
		return "", err
	}
	res, err := sharedlib.Closure(prog, trees, triplet)
	if err != nil {
		return "", fmt.Errorf("wifi: %w (wifi.libraries in the profile lists the packages searched)", err)
	}
	t.Copy(SupplicantPath, 0o755, prog)
	if err := shipClosure(t, res); err != nil {
		return "", fmt.Errorf("wifi: %w", err)
	}
	var size int64
	for _, l := range res.Libs {
		size += duSizeNode(&tree.Node{Source: l.Source})
	}
	size += duSizeNode(&tree.Node{Source: prog})
	return fmt.Sprintf("%s + %d shared libraries, %s", desc, len(res.Libs), human(size)), nil
}

// checkMachine refuses an ELF program built for another machine than arch.
func checkMachine(p, arch string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armv7": elf.EM_ARM}[arch]
	if f.Machine != want {
		return fmt.Errorf("%s is a %v program but the %s image needs %v: use the package of Debian architecture %s", p, f.Machine, arch, want,
			map[string]string{"amd64": "amd64", "arm64": "arm64", "armv7": "armhf"}[arch])
	}
	return nil
}
