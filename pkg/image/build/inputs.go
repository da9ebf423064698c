package build

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/image/profile"
)

// findDeb returns the newest <name>_<version>_<arch>.deb in dirs.
func findDeb(dirs []string, name, arch string) (string, string, error) {
	var best, bestVer string
	for _, d := range dirs {
		ms, _ := filepath.Glob(filepath.Join(d, name+"_*_"+arch+".deb"))
		for _, m := range ms {
			n, v, a, ok := deb.FileName(filepath.Base(m))
			if !ok || n != name || a != arch {
				continue
			}
			if best == "" || deb.CompareVersions(v, bestVer) > 0 {
				best, bestVer = m, v
			}
		}
	}
	if best == "" {
		return "", "", fmt.Errorf("package %s (%s) not found in %s: run scripts/fetch-inputs.sh (apt-get download %s:%s) or pass --debs DIR",
			name, arch, strings.Join(dirs, ", "), name, arch)
	}
	return best, bestVer, nil
}

var abiKernel = regexp.MustCompile(`^linux-image-[0-9]`)

// resolveInput returns a cached, verified copy of a profile input. Debian
// kernel metapackages (linux-image-cloud-amd64) are followed to the
// ABI-versioned package they depend on.
func (b *builder) resolveInput(ctx context.Context, in profile.Input, defArch string) (path, desc string, err error) {
	if in.URL != "" {
		p, err := b.cache.Get(ctx, in.URL, in.SHA256)
		if err != nil {
			return "", "", err
		}
		return p, in.URL, nil
	}
	arch := in.DebArch
	if arch == "" {
		arch = defArch
	}
	name := in.Package
	for range 3 {
		file, ver, err := findDeb(b.opts.DebDirs, name, arch)
		if err != nil {
			return "", "", err
		}
		if strings.HasPrefix(name, "linux-image-") && !abiKernel.MatchString(name) {
			ctl, err := deb.Control(file)
			if err != nil {
				return "", "", err
			}
			next := ""
			for _, d := range strings.Split(ctl["Depends"], ",") {
				d = strings.TrimSpace(d)
				if f := strings.Fields(d); len(f) > 0 && abiKernel.MatchString(f[0]) {
					next = f[0]
					break
				}
			}
			if next == "" {
				return "", "", fmt.Errorf("kernel metapackage %s %s names no linux-image-<abi> package in Depends", name, ver)
			}
			name = next
			continue
		}
		if in.SHA256 != "" {
			p, err := b.cache.Get(ctx, file, in.SHA256)
			return p, name + " " + ver, err
		}
		return file, name + " " + ver, nil
	}
	return "", "", fmt.Errorf("package %s: too many metapackage hops", in.Package)
}

// unpackDeb unpacks a package once into the cache (keyed by its sha256) and
// returns the folder. keep selects the paths, as in deb.Extract; key names the
// selection so different selections don't share a folder.
func (b *builder) unpackDeb(debPath, key string, keep func(string) bool) (string, error) {
	sum, err := fetch.SumFile(debPath)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.opts.CacheDir, "unpacked", sum[:32]+"-"+key)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := deb.Extract(debPath, tmp, keep); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("unpack %s: %w", debPath, err)
	}
	return dir, nil
}

// kernelFiles finds vmlinuz and the module tree in an unpacked kernel package.
func kernelFiles(dir string) (vmlinuz, modDir, kver string, err error) {
	ents, err := os.ReadDir(filepath.Join(dir, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		return "", "", "", fmt.Errorf("kernel package: want exactly one lib/modules/<version> folder in %s (%v)", dir, err)
	}
	kver = ents[0].Name()
	modDir = filepath.Join(dir, "lib", "modules", kver)
	vmlinuz = filepath.Join(dir, "boot", "vmlinuz-"+kver)
	if _, err := os.Stat(vmlinuz); err != nil {
		return "", "", "", fmt.Errorf("kernel package: no boot/vmlinuz-%s: %w", kver, err)
	}
	return vmlinuz, modDir, kver, nil
}

// k3s returns the k3s binary: --k3s FILE, else the pinned release from the
// cache or the network.
func (b *builder) k3s(ctx context.Context) (path, desc string, err error) {
	k := b.prof.K3s
	if b.opts.K3s != "" {
		src := b.opts.K3s
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			// a folder of release assets: k3s, k3s-arm64, k3s-armhf
			src = filepath.Join(src, K3sAssetName(b.prof.Arch))
		}
		if err := checkELF(src, b.prof.Arch); err != nil {
			return "", "", err
		}
		p, err := b.cache.Get(ctx, src, "")
		if err != nil {
			return "", "", fmt.Errorf("k3s from --k3s: %w", err)
		}
		sum := filepath.Base(p)
		desc = fmt.Sprintf("%s (sha256 %s)", src, sum)
		if sum != strings.ToLower(k.SHA256) {
			desc += fmt.Sprintf("; not the pinned %s (sha256 %s)", k.Version, k.SHA256)
		}
		return p, desc, nil
	}
	p, err := b.cache.Get(ctx, k.URL, k.SHA256)
	if err != nil {
		if errors.Is(err, fetch.ErrMismatch) {
			return "", "", fmt.Errorf("k3s %s: %w", k.Version, err)
		}
		return "", "", fmt.Errorf("k3s binary not found: no network access to %s (%v); download it on another machine and pass --k3s /path/to/k3s (sha256 %s expected for %s)",
			k.URL, err, k.SHA256, k.Version)
	}
	return p, k.Version, nil
}

// caBundle concatenates the Mozilla certificates of an unpacked
// ca-certificates package in name order (what update-ca-certificates does).
func caBundle(dir string) ([]byte, error) {
	var out []byte
	root := filepath.Join(dir, "usr", "share", "ca-certificates")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".crt") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, b...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			out = append(out, '\n')
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("CA certificates in %s: %w", root, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CA certificates: no .crt files in %s", root)
	}
	return out, nil
}

// K3sAssetName is the k3s release asset for an arch.
func K3sAssetName(arch string) string {
	switch arch {
	case "arm64":
		return "k3s-arm64"
	case "armv7":
		return "k3s-armhf"
	}
	return "k3s"
}

// checkELF refuses a k3s binary built for another machine than the image's
// (an amd64 k3s in an arm64 image would only fail on the device).
func checkELF(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		if _, serr := os.Stat(path); serr != nil {
			return fmt.Errorf("k3s %s: %w", path, serr)
		}
		return nil // not ELF (a test script): nothing to check
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armv7": elf.EM_ARM}[arch]
	if f.Machine != want {
		return fmt.Errorf("k3s %s is a %v binary but the %s image needs %v: pass the %s release asset (%s)",
			path, f.Machine, arch, want, arch, K3sAssetName(arch))
	}
	return nil
}
