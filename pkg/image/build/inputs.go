package build

import (
	"context"
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
	complete := func() bool { _, err := os.Stat(filepath.Join(dir, ".complete")); return err == nil }
	if complete() {
		return dir, nil
	}
	// Another keso-build may unpack the same package at the same time (two
	// builds sharing a cache): each unpacks into a folder of its own and
	// renames it into place, which is atomic; the loser uses the winner's.
	// A folder at dir is complete (.complete is written before the rename)
	// unless an older builder left it.
	if _, err := os.Stat(dir); err == nil {
		os.RemoveAll(dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("unpack %s: %w", debPath, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", debPath, err)
	}
	defer os.RemoveAll(tmp) // gone after a successful rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("unpack %s: %w", debPath, err)
	}
	if err := deb.Extract(debPath, tmp, keep); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", fmt.Errorf("unpack %s: %w", debPath, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if complete() {
			return dir, nil // another build unpacked it first
		}
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
