// Package build is keso-build's engine: from an image profile and its
// inputs (Debian kernel and bootloader packages, k3s, our Go binaries, the
// u-root userland) it writes every artifact into one output folder — root
// squashfs, kernel, initrd, hybrid ISO, raw GPT disk, netboot folder,
// SHA256SUMS — and returns a manifest. It needs no root and writes only to
// the output folder and the cache. With the same Epoch and inputs the
// artifacts are byte-identical.
package build

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/image/esp"
	"github.com/keso-os/keso/pkg/image/extra"
	"github.com/keso-os/keso/pkg/image/gobuild"
	"github.com/keso-os/keso/pkg/image/grubefi"
	"github.com/keso-os/keso/pkg/image/iso"
	"github.com/keso-os/keso/pkg/image/kmod"
	"github.com/keso-os/keso/pkg/image/netboot"
	"github.com/keso-os/keso/pkg/image/ociimage"
	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/image/raw"
	"github.com/keso-os/keso/pkg/image/squashfs"
	"github.com/keso-os/keso/pkg/image/tree"
	"github.com/keso-os/keso/pkg/sign"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/verity"
	"github.com/keso-os/keso/pkg/version"
)

// Options for Build.
type Options struct {
	Profile  *profile.Profile
	RepoDir  string   // keso module root: Go sources, overlay/, iso/
	OutDir   string   // e.g. dist/amd64
	CacheDir string   // content-addressed cache (default fetch.DefaultDir())
	DebDirs  []string // folders holding the .deb inputs (scripts/fetch-inputs.sh)
	K3s      string   // k3s binary file; empty = pinned release from the profile
	// TestFixture allows a k3s that carries TestFixtureMarker (the test
	// suite's stand-ins) and records the image as built with a fixture.
	TestFixture bool
	// HTTPClient downloads the k3s release and its sha256sum file
	// (default http.DefaultClient; tests: an httptest TLS server's client).
	HTTPClient *http.Client
	Version    string // overrides the profile's version
	Epoch      int64  // SOURCE_DATE_EPOCH: every time stamp in every artifact
	// NetbootURL is the default base URL written into boot.ipxe.
	NetbootURL string
	// Outputs overrides the profile's output set.
	Outputs []string
	// InitBinary / KesoBinary use prebuilt binaries instead of building
	// cmd/keso-init and cmd/keso (tests).
	InitBinary, KesoBinary string
	// Userland uses this multi-call binary instead of building u-root (tests).
	Userland string
	// RootSizeMiB overrides the raw disk's root slot size.
	RootSizeMiB int
	// SignKey signs the upgrade artifact (keso-<version>-<arch>.squashfs +
	// .sha256 + .sig); its public key is built into the root as the
	// release key. Without it the build is unsigned and says so.
	SignKey ed25519.PrivateKey
	// Extra are host folders added to the root after the profile's extra:
	// folders (pkg/image/extra: they add files, never replace keso's).
	Extra []string
	// Log gets one line per step; nil is quiet.
	Log io.Writer
	// Progress shows mksquashfs's progress bar and download progress on Log.
	Progress bool
}

// Artifact is one written file.
type Artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Step is one timed build step.
type Step struct {
	Name     string  `json:"name"`
	Seconds  float64 `json:"seconds"`
	Output   string  `json:"output,omitempty"`
	Size     int64   `json:"size,omitempty"`
	Describe string  `json:"describe,omitempty"`
}

// Manifest describes what was built.
type Manifest struct {
	Builder   string            `json:"builder"` // keso-build's own version
	Arch      string            `json:"arch"`
	Version   string            `json:"version"`
	Kernel    string            `json:"kernel"`
	K3s       *status.K3sBinary `json:"k3s"`
	Epoch     int64             `json:"source_date_epoch"`
	OutDir    string            `json:"out_dir"`
	Artifacts []Artifact        `json:"artifacts"`
	Steps     []Step            `json:"steps"`
	Seconds   float64           `json:"seconds"`
	// SizeWithoutK3sAndModules is the root squashfs's uncompressed content
	// minus k3s and kernel modules: "how big is the OS itself".
	RootContentBytes     int64 `json:"root_content_bytes"`
	RootK3sBytes         int64 `json:"root_k3s_bytes"`
	RootModulesBytes     int64 `json:"root_modules_bytes"`
	RootKernelInitrdByte int64 `json:"root_kernel_initrd_bytes"`
	// Extra lists the extra trees added to the root, in order.
	Extra []extra.Summary `json:"extra,omitempty"`
}

type builder struct {
	opts  Options
	prof  *profile.Profile
	cache *fetch.Cache
	man   *Manifest
	work  string
	epoch time.Time
	ver   string
	outs  map[string]bool

	// resolved inputs
	vmlinuz, modDir, kver string
	kmods                 *kmod.Tree
	k3sPath               string
	initBin, kesoBin, bb  string
	caBundle              []byte
	sdboot                string
	grub                  string // GRUB core image (bootloader.grub), else ""
	grubMods              string // GRUB's module folder (unpacked bootloader.grub)
	isolinuxDir           string
	syslinuxDir           string
	initrd, squash        string
	slotA, initrdA        string // sealSlotA's slot image and initrd
	slotRec               verity.Record
	operatorTar           string
	rootTree              tree.Tree
	rpi                   *rpiInputs
}

// Artifact file names in the output folder.
func names(arch string) map[string]string {
	return map[string]string{
		"squashfs": "keso-" + arch + ".squashfs",
		"vmlinuz":  "vmlinuz",
		"initrd":   "initrd",
		"iso":      "keso-" + arch + ".iso",
		"raw":      "keso-" + arch + ".img",
		"netboot":  "netboot",
		"rpi":      "keso-rpi-" + arch + ".img",
	}
}

// newBuilder sets up a build from its options (defaults already applied).
func newBuilder(o Options) *builder {
	p := o.Profile
	b := &builder{opts: o, prof: p, epoch: time.Unix(o.Epoch, 0).UTC(), ver: p.Version, outs: map[string]bool{}}
	if o.Version != "" {
		b.ver = o.Version
	}
	outs := p.Outputs
	if len(o.Outputs) > 0 {
		outs = o.Outputs
	}
	for _, x := range outs {
		b.outs[x] = true
	}
	b.outs["squashfs"], b.outs["vmlinuz"], b.outs["initrd"] = true, true, true
	b.cache = &fetch.Cache{Dir: o.CacheDir, Client: o.HTTPClient}
	if o.Progress && o.Log != nil {
		b.cache.Progress = progressBar(o.Log)
	}
	b.man = &Manifest{Builder: version.Version, Arch: p.Arch, Version: b.ver, Epoch: o.Epoch, OutDir: o.OutDir}
	return b
}

// Build writes the artifacts and returns the manifest.
func Build(ctx context.Context, o Options) (*Manifest, error) {
	start := time.Now()
	p := o.Profile
	if p == nil {
		return nil, fmt.Errorf("build: no profile")
	}
	if o.CacheDir == "" {
		o.CacheDir = fetch.DefaultDir()
	}
	if o.RepoDir == "" {
		o.RepoDir = "."
	}
	b := newBuilder(o)
	if err := squashfs.Check(); err != nil {
		return nil, err
	}
	if b.outs["raw"] {
		if err := raw.CheckTools(); err != nil {
			return nil, err
		}
	}
	if p.Bootloader.Grub != nil {
		if err := grubefi.Check(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("build: output folder: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(o.CacheDir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("build: cache folder: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Join(o.CacheDir, "tmp"), "build-"+p.Arch+"-")
	if err != nil {
		return nil, fmt.Errorf("build: work folder: %w", err)
	}
	b.work = work
	defer os.RemoveAll(work)
	b.clean()

	steps := []struct {
		name string
		fn   func(context.Context) (string, string, error)
	}{
		{"kernel", b.stepKernel},
		{"k3s", b.stepK3s},
		{"bootloader", b.stepBootloader},
		{"rpi inputs", b.stepRPiInputs},
		{"go binaries", b.stepGoBinaries},
		{"u-root userland", b.stepBusybox},
		{"operator image", b.stepOperatorImage},
		{"initrd", b.stepInitrd},
		{"root squashfs", b.stepSquashfs},
		{"upgrade image", b.stepUpgradeImage},
		{"delta from nothing", b.stepFullDelta},
		{"raw disk", b.stepRaw},
		{"rpi sd card", b.stepRPi},
		{"iso", b.stepISO},
		{"netboot", b.stepNetboot},
		{"SHA256SUMS", b.stepSums},
	}
	for _, s := range steps {
		t0 := time.Now()
		out, desc, err := s.fn(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		st := Step{Name: s.name, Seconds: time.Since(t0).Seconds(), Describe: desc}
		if out != "" {
			st.Output = out
			st.Size = duSize(out)
		}
		b.man.Steps = append(b.man.Steps, st)
		b.logStep(st)
	}
	arts, err := b.artifacts()
	if err != nil {
		return nil, err
	}
	b.man.Artifacts = arts
	b.man.Seconds = time.Since(start).Seconds()
	mj, _ := json.MarshalIndent(b.man, "", "  ")
	if err := os.WriteFile(filepath.Join(o.OutDir, "manifest.json"), append(mj, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("build: write manifest: %w", err)
	}
	return b.man, nil
}

func (b *builder) logStep(s Step) {
	if b.opts.Log == nil {
		return
	}
	line := fmt.Sprintf("%-16s %6.1fs", s.Name, s.Seconds)
	if s.Output != "" {
		rel, err := filepath.Rel(b.opts.OutDir, s.Output)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = "(" + filepath.Base(s.Output) + ")"
		}
		line += fmt.Sprintf("  %-24s %s", rel, human(s.Size))
	}
	if s.Describe != "" {
		line += "  (" + s.Describe + ")"
	}
	fmt.Fprintln(b.opts.Log, line)
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// duSize is the size of a file, or the sum of the files in a folder.
func duSize(p string) int64 {
	var n int64
	filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// clean removes the artifacts a previous build left in the output folder.
func (b *builder) clean() {
	for _, n := range names(b.prof.Arch) {
		os.RemoveAll(filepath.Join(b.opts.OutDir, n))
	}
	os.Remove(filepath.Join(b.opts.OutDir, "SHA256SUMS"))
	os.Remove(filepath.Join(b.opts.OutDir, "manifest.json"))
}

func (b *builder) out(kind string) string {
	return filepath.Join(b.opts.OutDir, names(b.prof.Arch)[kind])
}

func (b *builder) stepKernel(ctx context.Context) (string, string, error) {
	debPath, desc, err := b.resolveInput(ctx, b.prof.Kernel, b.prof.DebArch())
	if err != nil {
		return "", "", err
	}
	dir, err := b.unpackDeb(debPath, "kernel", func(n string) bool {
		return strings.HasPrefix(n, "boot/vmlinuz-") || strings.HasPrefix(n, "lib/modules/")
	})
	if err != nil {
		return "", "", err
	}
	b.vmlinuz, b.modDir, b.kver, err = kernelFiles(dir)
	if err != nil {
		return "", "", err
	}
	b.kmods, err = kmod.Open(b.modDir)
	if err != nil {
		return "", "", err
	}
	b.man.Kernel = b.kver
	if err := copyFile(b.vmlinuz, b.out("vmlinuz")); err != nil {
		return "", "", err
	}
	ca, _, err := b.resolveInput(ctx, b.prof.CACertificates, "all")
	if err != nil {
		return "", "", err
	}
	caDir, err := b.unpackDeb(ca, "ca", func(n string) bool { return strings.HasPrefix(n, "usr/share/ca-certificates/") })
	if err != nil {
		return "", "", err
	}
	if b.caBundle, err = caBundle(caDir); err != nil {
		return "", "", err
	}
	return b.out("vmlinuz"), desc, nil
}

func (b *builder) stepK3s(ctx context.Context) (string, string, error) {
	p, info, err := b.k3s(ctx)
	if err != nil {
		return "", "", err
	}
	b.k3sPath = p
	b.man.K3s = info
	return "", info.String(), nil
}

func (b *builder) stepBootloader(ctx context.Context) (string, string, error) {
	var descs []string
	bl := b.prof.Bootloader
	if bl.UEFI != nil {
		p, desc, err := b.resolveInput(ctx, bl.UEFI.Input, b.prof.DebArch())
		if err != nil {
			return "", "", err
		}
		want := strings.TrimPrefix(bl.UEFI.File, "/")
		dir, err := b.unpackDeb(p, "uefi", func(n string) bool { return n == want })
		if err != nil {
			return "", "", err
		}
		b.sdboot = filepath.Join(dir, want)
		if _, err := os.Stat(b.sdboot); err != nil {
			return "", "", fmt.Errorf("UEFI loader %s not in %s", want, desc)
		}
		descs = append(descs, desc)
	}
	if bl.Grub != nil {
		p, desc, err := b.resolveInput(ctx, bl.Grub.Input, b.prof.DebArch())
		if err != nil {
			return "", "", err
		}
		want := strings.Trim(bl.Grub.Dir, "/") + "/"
		dir, err := b.unpackDeb(p, "grub", func(n string) bool { return strings.HasPrefix(n, want) })
		if err != nil {
			return "", "", err
		}
		b.grub, b.grubMods = filepath.Join(b.work, "grub"+strings.ToUpper(b.prof.Arch)+".efi"), filepath.Join(dir, want)
		if err := grubefi.Mkimage(ctx, b.prof.Arch, b.grubMods, b.grub); err != nil {
			return "", "", fmt.Errorf("GRUB core image from %s: %w", desc, err)
		}
		descs = append(descs, desc+" (grub-mkimage "+strings.Join(grubefi.Modules, " ")+")")
	}
	if bl.BIOS != nil && b.outs["iso"] {
		p, desc, err := b.resolveInput(ctx, bl.BIOS.Isolinux, "all")
		if err != nil {
			return "", "", err
		}
		if b.isolinuxDir, err = b.unpackDeb(p, "isolinux", func(n string) bool { return strings.HasPrefix(n, "usr/lib/ISOLINUX/") }); err != nil {
			return "", "", err
		}
		descs = append(descs, desc)
		p, desc, err = b.resolveInput(ctx, bl.BIOS.Syslinux, "all")
		if err != nil {
			return "", "", err
		}
		if b.syslinuxDir, err = b.unpackDeb(p, "syslinux", func(n string) bool { return n == "usr/lib/syslinux/modules/bios/ldlinux.c32" }); err != nil {
			return "", "", err
		}
		descs = append(descs, desc)
	}
	return "", strings.Join(descs, ", "), nil
}

func (b *builder) target() gobuild.Target {
	a, arm := b.prof.GoArch()
	return gobuild.Target{GOARCH: a, GOARM: arm}
}

func (b *builder) stepGoBinaries(ctx context.Context) (string, string, error) {
	b.initBin, b.kesoBin = b.opts.InitBinary, b.opts.KesoBinary
	var built []string
	for _, x := range []struct {
		dst *string
		pkg string
	}{{&b.initBin, "./cmd/keso-init"}, {&b.kesoBin, "./cmd/keso"}} {
		if *x.dst != "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(b.opts.RepoDir, x.pkg)); err != nil {
			return "", "", fmt.Errorf("%s not found in %s (is --repo the keso checkout?)", x.pkg, b.opts.RepoDir)
		}
		out := filepath.Join(b.work, filepath.Base(x.pkg))
		if err := gobuild.Binary(ctx, b.opts.RepoDir, x.pkg, out, b.target(), b.ver); err != nil {
			return "", "", err
		}
		*x.dst = out
		built = append(built, filepath.Base(x.pkg))
	}
	return "", strings.Join(built, ", "), nil
}

func (b *builder) stepBusybox(ctx context.Context) (string, string, error) {
	if b.opts.Userland != "" {
		b.bb = b.opts.Userland
		return "", "prebuilt " + b.opts.Userland, nil
	}
	p, err := gobuild.Busybox(ctx, b.opts.RepoDir, b.opts.CacheDir, b.target(), gobuild.DefaultCommands)
	if err != nil {
		return "", "", err
	}
	b.bb = p
	return p, fmt.Sprintf("%d commands", len(gobuild.DefaultCommands)), nil
}

// OperatorImagePath is where the root carries the operator's OCI tarball.
// /var is a writable layer (tmpfs or KESO_STATE), so the system stage links
// it into k3s's air-gap folder /var/lib/rancher/k3s/agent/images/.
func OperatorImagePath(arch string) string {
	return "usr/share/keso/images/keso-operator-" + arch + ".tar"
}

func (b *builder) stepOperatorImage(ctx context.Context) (string, string, error) {
	keso, err := os.ReadFile(b.kesoBin)
	if err != nil {
		return "", "", fmt.Errorf("operator image: %w", err)
	}
	out := filepath.Join(b.work, "keso-operator.tar")
	goarch, _ := b.prof.GoArch()
	// Only the LocalRef tag (what the shipped manifests use): with a second
	// ref the tarball's tag order varies from run to run (map iteration in
	// go-containerregistry's multi-ref writer), which breaks reproducibility.
	if err := ociimage.WriteFile(out, keso, ociimage.Options{Arch: goarch, Created: b.epoch}); err != nil {
		return "", "", err
	}
	b.operatorTar = out
	return out, ociimage.LocalRef, nil
}

// addModules puts a resolved module set under lib/modules/<kver> with its
// modules.dep, modules.alias and the kernel's modules.builtin.
func (b *builder) addModules(t tree.Tree, s *kmod.Set) {
	base := "lib/modules/" + b.kver + "/"
	for _, n := range s.Order {
		t.Copy(base+b.kmods.Path[n], 0o644, filepath.Join(b.modDir, filepath.FromSlash(b.kmods.Path[n])))
	}
	t.Data(base+"modules.dep", 0o644, b.kmods.ModulesDep(s))
	t.Data(base+"modules.alias", 0o644, b.kmods.ModulesAlias(s))
	if _, err := os.Stat(filepath.Join(b.modDir, "modules.builtin")); err == nil {
		t.Copy(base+"modules.builtin", 0o644, filepath.Join(b.modDir, "modules.builtin"))
	}
}

// InitrdTree is the initrd's content per the boot contract (docs/boot.md).
func (b *builder) initrdTree() (tree.Tree, error) {
	s, err := b.kmods.Resolve(b.initrdModules())
	if err != nil {
		return nil, fmt.Errorf("initrd modules: %w", err)
	}
	t := tree.Tree{}
	for _, d := range []string{"dev", "proc", "sys", "run", "sysroot", "tmp", "etc/keso"} {
		t.Dir(d, 0o755)
	}
	t.Dir("tmp", 0o777|fs.ModeSticky)
	t.Char("dev/console", 0o600, 5, 1)
	t.Char("dev/null", 0o666, 1, 3)
	t.Copy("init", 0o755, b.initBin)
	t.Symlink("sbin/modprobe", "../init") // the kernel's module autoloader (kmod.Modprobe)
	t.Data("etc/initrd-release", 0o644, osRelease(b.ver))
	var list bytes.Buffer
	for _, n := range append(append([]string{}, s.Requested...), s.Builtin...) {
		fmt.Fprintln(&list, n)
	}
	t.Data("etc/keso/initrd-modules", 0o644, list.Bytes())
	b.addModules(t, s)
	return t, nil
}

func osRelease(v string) []byte {
	return []byte(fmt.Sprintf("NAME=keso\nID=keso\nVERSION=%q\nVERSION_ID=%q\nPRETTY_NAME=\"keso %s\"\nHOME_URL=\"https://github.com/keso-os/keso\"\n", v, v, v))
}

func (b *builder) stepInitrd(ctx context.Context) (string, string, error) {
	t, err := b.initrdTree()
	if err != nil {
		return "", "", err
	}
	f, err := os.Create(b.out("initrd"))
	if err != nil {
		return "", "", fmt.Errorf("initrd: %w", err)
	}
	defer f.Close()
	// A root without compression keeps its initrd plain too: a gzip of
	// keso-init would change as a whole with each build, and the upgrade
	// delta would carry all of it (the kernel reads either).
	var w io.WriteCloser = nopCloser{f}
	what := "newc cpio"
	if b.prof.Compression != "none" {
		w, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		what = "newc cpio, gzip"
	}
	if err := t.WriteCPIO(w, b.epoch); err != nil {
		return "", "", fmt.Errorf("initrd: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", "", fmt.Errorf("initrd: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", fmt.Errorf("initrd: %w", err)
	}
	b.initrd = b.out("initrd")
	return b.initrd, what, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// rootTreePlan is the root file system's content per the boot contract.
func (b *builder) rootTreePlan() (tree.Tree, error) {
	s, err := b.kmods.Resolve(b.rootModules())
	if err != nil {
		return nil, fmt.Errorf("root modules: %w", err)
	}
	t := tree.Tree{}
	for _, d := range []string{"proc", "sys", "dev", "run", "var", "keso/state", "root", "home", "opt", "mnt", "usr/share/keso", "etc/keso", "usr/local/bin", "usr/sbin", "usr/bin"} {
		t.Dir(d, 0o755)
	}
	t.Dir("tmp", 0o777|fs.ModeSticky)
	t.Dir("root", 0o700)
	t.Copy("usr/sbin/keso-init", 0o755, b.initBin)
	t.Symlink("sbin/init", "../usr/sbin/keso-init")     // relative: resolvable below /sysroot before switch_root
	t.Symlink("sbin/modprobe", "../usr/sbin/keso-init") // /proc/sys/kernel/modprobe: keso-init runs kmod.Modprobe under this name
	t.Copy("usr/bin/keso", 0o755, b.kesoBin)
	t.Symlink("usr/bin/k3os", "keso") // k3OS's runbooks: `k3os install`, `k3os upgrade`, `k3os config` (docs/config.md, "Coming from k3OS")
	t.Copy("usr/local/bin/k3s", 0o755, b.k3sPath)
	inImage := *b.man.K3s
	inImage.Source = "" // a host path would make the image depend on where the input lay
	kj, _ := json.MarshalIndent(inImage, "", "  ")
	t.Data(K3sImagePath, 0o644, append(kj, '\n'))
	if b.operatorTar != "" {
		t.Copy(OperatorImagePath(b.prof.Arch), 0o644, b.operatorTar)
	}
	t.Copy("bin/u-root", 0o755, b.bb)
	for _, c := range gobuild.DefaultCommands {
		t.Symlink("bin/"+c, "u-root")
	}
	t.Symlink("bin/sh", "gosh")
	t.Data("etc/os-release", 0o644, osRelease(b.ver))
	t.Symlink("usr/lib/os-release", "../../etc/os-release")
	t.Data("etc/ssl/certs/ca-certificates.crt", 0o644, b.caBundle)
	t.Data("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	t.Data("etc/group", 0o644, []byte("root:x:0:\n"))
	t.Data("etc/hostname", 0o644, []byte("keso\n"))
	b.addModules(t, s)
	b.addRPiRoot(t)
	t.Copy("boot/vmlinuz", 0o644, b.vmlinuz)
	t.Copy("boot/initrd", 0o644, b.initrd)
	ov := filepath.Join(b.opts.RepoDir, "overlay")
	if _, err := os.Stat(ov); err == nil {
		if err := t.AddHostDir(ov, ""); err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
	}
	for p := range t {
		if filepath.Base(p) == ".gitkeep" {
			delete(t, p)
		}
	}
	return t, nil
}

func (b *builder) stepSquashfs(ctx context.Context) (string, string, error) {
	t, err := b.rootTreePlan()
	if err != nil {
		return "", "", err
	}
	if err := b.addInstaller(ctx, t); err != nil {
		return "", "", err
	}
	wifi, err := b.addWiFi(ctx, t)
	if err != nil {
		return "", "", err
	}
	admin, err := b.addAdmin(ctx, t)
	if err != nil {
		return "", "", err
	}
	if b.man.Extra, err = extra.Add(t, append(append([]string{}, b.prof.Extra...), b.opts.Extra...)); err != nil {
		return "", "", err
	}
	b.rootTree = t
	b.man.RootContentBytes, _ = t.Size()
	for p, n := range t {
		if n.Kind != tree.File {
			continue
		}
		sz := duSizeNode(n)
		switch {
		case p == "usr/local/bin/k3s":
			b.man.RootK3sBytes += sz
		case strings.HasPrefix(p, "lib/modules/"):
			b.man.RootModulesBytes += sz
		case strings.HasPrefix(p, "boot/"):
			b.man.RootKernelInitrdByte += sz
		}
	}
	stage := filepath.Join(b.work, "root")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", "", err
	}
	if err := t.WriteDir(stage, b.epoch); err != nil {
		return "", "", err
	}
	var prog io.Writer
	if b.opts.Progress {
		prog = b.opts.Log
	}
	out := b.out("squashfs")
	if err := squashfs.Make(ctx, stage, out, squashfs.Options{Compression: b.prof.Compression, Epoch: b.opts.Epoch, Progress: prog}); err != nil {
		return "", "", err
	}
	os.RemoveAll(stage)
	b.squash = out
	comp := b.prof.Compression
	if comp == "" {
		comp = "zstd"
	}
	if wifi != "" {
		comp += "; Wi-Fi: " + wifi
	}
	if admin != "" {
		comp += "; admin: " + admin
	}
	for _, x := range b.man.Extra {
		comp += fmt.Sprintf("; extra %s: %d entries, %s", x.Dir, x.Entries, human(x.Bytes))
	}
	return out, fmt.Sprintf("%d entries, %s content, %s", len(t), human(b.man.RootContentBytes), comp), nil
}

func duSizeNode(n *tree.Node) int64 {
	if n.Data != nil {
		return int64(len(n.Data))
	}
	fi, err := os.Stat(n.Source)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// InstallDir is where the root carries what `keso install` (and the silent
// install at boot) writes to a disk besides the root image itself: the
// UEFI loader, a small empty ext4 for KESO_STATE, the arch and the kernel
// command line of the installed system (pkg/install.Dir).
const InstallDir = "usr/share/keso/install"

// KeysDir holds the release public keys `keso upgrade` trusts
// (pkg/upgrade.KeysDir).
const KeysDir = "usr/share/keso/keys"

// UpgradeImageName is the upgrade artifact's file name.
func UpgradeImageName(version, arch string) string {
	return "keso-" + version + "-" + arch + ".squashfs"
}

// stepUpgradeImage writes the upgrade artifact beside the root squashfs:
// the same file under its versioned name, its sha256 in sha256sum format,
// its dm-verity root hash in the same format (.verity), and, with a signing
// key, the detached ed25519 signatures of both (.sig, .verity.sig).
func (b *builder) stepUpgradeImage(ctx context.Context) (string, string, error) {
	name := UpgradeImageName(b.ver, b.prof.Arch)
	dst := filepath.Join(b.opts.OutDir, name)
	if err := linkOrCopy(b.squash, dst); err != nil {
		return "", "", fmt.Errorf("upgrade image: %w", err)
	}
	sum, err := fetch.SumFile(dst)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(dst+".sha256", []byte(sum+"  "+name+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("upgrade image: %w", err)
	}
	// The image's dm-verity root hash (the same in whichever slot it
	// lands: pkg/verity derives the salt from the digest), published and
	// signed beside it: `keso upgrade` checks the tree it builds against it.
	if _, _, err := b.sealSlotA(); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(dst+".verity", []byte(b.slotRec.RootHash+"  "+name+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("upgrade image: %w", err)
	}
	if b.opts.SignKey == nil {
		os.Remove(dst + ".sig")
		os.Remove(dst + ".verity.sig")
		return dst, "UNSIGNED: pass --sign-key (make one with keso-build keygen); nodes refuse unsigned upgrades", nil
	}
	raw, _ := hex.DecodeString(sum)
	var digest [sha256.Size]byte
	copy(digest[:], raw)
	if err := os.WriteFile(dst+".sig", sign.Sign(b.opts.SignKey, digest), 0o644); err != nil {
		return "", "", fmt.Errorf("upgrade image: %w", err)
	}
	rootHash, _ := hex.DecodeString(b.slotRec.RootHash)
	var root [sha256.Size]byte
	copy(root[:], rootHash)
	if err := os.WriteFile(dst+".verity.sig", sign.SignVerityRoot(b.opts.SignKey, root), 0o644); err != nil {
		return "", "", fmt.Errorf("upgrade image: %w", err)
	}
	pub := b.opts.SignKey.Public().(ed25519.PublicKey)
	return dst, "signed by key " + sign.KeyID(pub), nil
}

// stepFullDelta writes, for a signed release with an uncompressed root, the
// delta from nothing beside the upgrade image (IMAGE.delta/full.*: the
// image compressed in pieces each checked on arrival): a node that no
// published delta fits fetches that (the size of a zstd root) rather than
// the uncompressed image. The data file and the signature go first, the
// index last: a published index always has both beside it.
func (b *builder) stepFullDelta(ctx context.Context) (string, string, error) {
	if b.prof.Compression != "none" || b.opts.SignKey == nil {
		return "", "skipped (only for a signed release with compression: none)", nil
	}
	dst := filepath.Join(b.opts.OutDir, UpgradeImageName(b.ver, b.prof.Arch))
	img, err := os.ReadFile(dst)
	if err != nil {
		return "", "", fmt.Errorf("delta from nothing: %w", err)
	}
	var data bytes.Buffer
	ix, err := delta.Make(nil, img, &data, delta.Options{})
	if err != nil {
		return "", "", fmt.Errorf("delta from nothing: %w", err)
	}
	ix.Version = b.ver
	index, sig, err := ix.Sign(b.opts.SignKey)
	if err != nil {
		return "", "", fmt.Errorf("delta from nothing: %w", err)
	}
	p := delta.PathsFor(dst, "")
	if err := os.MkdirAll(filepath.Dir(p.Index), 0o755); err != nil {
		return "", "", fmt.Errorf("delta from nothing: %w", err)
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{p.Data, data.Bytes()}, {p.Sig, sig}, {p.Index, index}} {
		if err := os.WriteFile(f.path, f.b, 0o644); err != nil {
			return "", "", fmt.Errorf("delta from nothing: %w", err)
		}
	}
	return p.Index, fmt.Sprintf("%d bytes of data for the %d-byte image (%.0f%%)", data.Len(), len(img), 100*float64(data.Len())/float64(len(img))), nil
}

// addInstaller puts the installer's files into the root tree.
func (b *builder) addInstaller(ctx context.Context, t tree.Tree) error {
	if b.opts.SignKey != nil {
		pub := b.opts.SignKey.Public().(ed25519.PublicKey)
		t.Data(KeysDir+"/release.pub", 0o644, []byte(sign.MarshalPublic(pub)+"\n"))
	}
	t.Data(InstallDir+"/arch", 0o644, []byte(b.prof.Arch+"\n"))
	t.Data(InstallDir+"/cmdline", 0o644, []byte(b.prof.Cmdline+"\n"))
	switch {
	case b.grub != "":
		t.Copy(InstallDir+"/loader.efi", 0o644, b.grub)
		t.Data(InstallDir+"/bootloader", 0o644, []byte("grub\n"))
	case b.sdboot != "":
		t.Copy(InstallDir+"/loader.efi", 0o644, b.sdboot)
	}
	size := int64(b.prof.StateSizeMiB) << 20
	if size == 0 {
		size = 64 << 20
	}
	dir := filepath.Join(b.work, "install")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("installer state image: %w", err)
	}
	ext, err := raw.MakeExt4(ctx, dir, size, raw.LabelState, raw.GUID(b.prof.Arch+"/"+b.ver+"/install-state"), b.opts.Epoch)
	if err != nil {
		return fmt.Errorf("installer state image: %w", err)
	}
	t.Copy(InstallDir+"/state.ext4", 0o644, ext)
	return nil
}

func (b *builder) entry(file, title, dir, opts string) esp.Entry {
	return esp.Entry{File: file, Title: title, Version: 1, Linux: "/keso/" + dir + "/vmlinuz", Initrd: "/keso/" + dir + "/initrd",
		Options: strings.TrimSpace(opts + " " + b.prof.Cmdline)}
}

func (b *builder) seed() string {
	sum, _ := fetch.SumFile(b.squash)
	return b.prof.Arch + "/" + b.ver + "/" + sum
}

func (b *builder) stepRaw(ctx context.Context) (string, string, error) {
	if !b.outs["raw"] {
		return "", "skipped", nil
	}
	slotA, initrdA, err := b.sealSlotA()
	if err != nil {
		return "", "", err
	}
	loader := b.sdboot
	var entries []esp.Entry
	entries = append(entries, b.entry("slot-a.conf", "keso "+b.ver+" (slot a)", "a", "keso.slot=a"))
	files := map[string]string{"keso/a/vmlinuz": b.vmlinuz, "keso/a/initrd": initrdA}
	var t tree.Tree
	switch {
	case b.grub != "":
		t, err = grubefi.Plan(b.prof.Arch, b.grub, grubefi.SlotA{Kernel: b.vmlinuz, Initrd: initrdA, Options: b.prof.Cmdline})
		if err != nil {
			return "", "", err
		}
	case loader != "":
		t, err = esp.Plan(b.prof.Arch, loader, entries, files)
		if err != nil {
			return "", "", err
		}
	default:
		// no UEFI loader for this arch yet: kernel, initrd and entries only
		t = tree.Tree{}
		t.Data("loader/loader.conf", 0o644, []byte(esp.LoaderConf))
		t.Data("loader/entries/slot-a.conf", 0o644, []byte(entries[0].Render()))
		for p, s := range files {
			t.Copy(p, 0o644, s)
		}
	}
	rootMiB, stateMiB, err := b.slotSizes()
	if err != nil {
		return "", "", err
	}
	l := raw.Layout{EFIMiB: 256, RootMiB: rootMiB, StateMiB: stateMiB}
	if err := raw.Write(ctx, b.out("raw"), raw.Options{Arch: b.prof.Arch, Seed: b.seed(), Layout: l, ESP: t,
		Squashfs: slotA, Epoch: b.opts.Epoch, TmpDir: b.work}); err != nil {
		return "", "", err
	}
	desc := fmt.Sprintf("GPT: KESO_EFI 256 MiB, KESO_ROOT_A/B %d MiB, KESO_STATE %d MiB", rootMiB, stateMiB)
	switch {
	case b.grub != "":
		desc += "; GRUB with a try counter in grub/grubenv"
	case loader == "":
		desc += "; no UEFI loader for " + b.prof.Arch + " yet"
	}
	return b.out("raw"), desc, nil
}

// sealSlotA is slot A of the disk images, once: the root squashfs with its
// dm-verity tree (pkg/verity's slot layout), and the initrd with the
// slot's verity record appended, so that its initrd opens the slot through
// dm-verity.
func (b *builder) sealSlotA() (slot, initrd string, err error) {
	if b.slotA != "" {
		return b.slotA, b.initrdA, nil
	}
	slot, initrd = filepath.Join(b.work, "slot-a.img"), filepath.Join(b.work, "initrd-a")
	rec, err := verity.SealFile(b.squash, slot, "a")
	if err != nil {
		return "", "", err
	}
	in, err := os.ReadFile(b.initrd)
	if err != nil {
		return "", "", fmt.Errorf("initrd of slot a: %w", err)
	}
	out, err := verity.AppendToInitrd(in, rec)
	if err != nil {
		return "", "", fmt.Errorf("initrd of slot a: %w", err)
	}
	if err := os.WriteFile(initrd, out, 0o644); err != nil {
		return "", "", fmt.Errorf("initrd of slot a: %w", err)
	}
	b.slotA, b.initrdA, b.slotRec = slot, initrd, rec
	return slot, initrd, nil
}

// slotSizes is the size of each root slot (--root-size, else the
// profile's, else the squashfs + 25% rounded up to 64 MiB) and of the
// state partition (the profile's, else 64 MiB; it grows on first boot) of
// the disk images (raw, Raspberry Pi card).
func (b *builder) slotSizes() (rootMiB, stateMiB int, err error) {
	fi, err := os.Stat(b.squash)
	if err != nil {
		return 0, 0, err
	}
	rootMiB = b.opts.RootSizeMiB
	if rootMiB == 0 {
		rootMiB = b.prof.RootSizeMiB
	}
	if rootMiB == 0 {
		rootMiB = int((fi.Size()*5/4+(64<<20)-1)/(64<<20)) * 64
	}
	stateMiB = b.prof.StateSizeMiB
	if stateMiB == 0 {
		stateMiB = 64
	}
	return rootMiB, stateMiB, nil
}

// isolinuxCfg renders iso/isolinux.cfg from the repo.
func (b *builder) template(name string, data any) ([]byte, error) {
	p := filepath.Join(b.opts.RepoDir, "iso", name)
	src, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", p, err)
	}
	tm, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", p, err)
	}
	var buf bytes.Buffer
	if err := tm.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

func (b *builder) stepISO(ctx context.Context) (string, string, error) {
	if !b.outs["iso"] {
		return "", "skipped", nil
	}
	// efiboot.img: the UEFI loader (systemd-boot, or GRUB where the
	// profile boots through GRUB), the live entry and kernel/initrd copies
	live := b.entry("live.conf", "keso "+b.ver+" (live)", "live", "keso.live")
	var et, medium tree.Tree
	var err error
	switch {
	case b.grub != "":
		// GRUB reads its grub.cfg, kernel and initrd from the ISO 9660
		// file system (the live core image finds it); the EFI image holds
		// only the core image.
		core := filepath.Join(b.work, "grub-live.efi")
		if err := grubefi.MkimageLive(ctx, b.prof.Arch, b.grubMods, core, b.work); err != nil {
			return "", "", fmt.Errorf("GRUB live core image: %w", err)
		}
		et, medium, err = grubefi.PlanLive(b.prof.Arch, grubefi.Live{CoreImage: core,
			Kernel: "/" + iso.PathKernel, Initrd: "/" + iso.PathInitrd, Options: live.Options})
	case b.sdboot != "":
		et, err = esp.Plan(b.prof.Arch, b.sdboot, []esp.Entry{live},
			map[string]string{"keso/live/vmlinuz": b.vmlinuz, "keso/live/initrd": b.initrd})
	default:
		return "", "", fmt.Errorf("iso needs a UEFI loader: bootloader.uefi (systemd-boot) or bootloader.grub in the profile %s", b.prof.Name)
	}
	if err != nil {
		return "", "", err
	}
	size, err := esp.SizeFor(et)
	if err != nil {
		return "", "", err
	}
	efiboot := filepath.Join(b.work, "efiboot.img")
	eb, err := file.CreateFromPath(efiboot, size)
	if err != nil {
		return "", "", fmt.Errorf("efiboot.img: %w", err)
	}
	if err := esp.Write(eb, 0, size, raw.LabelEFI, et, b.opts.Epoch); err != nil {
		eb.Close()
		return "", "", fmt.Errorf("efiboot.img: %w", err)
	}
	eb.Close()
	files := tree.Tree{}
	files.Copy(iso.PathSquashfs, 0o644, b.squash)
	files.Copy(iso.PathKernel, 0o644, b.vmlinuz)
	files.Copy(iso.PathInitrd, 0o644, b.initrd)
	files.Copy(iso.PathEFIBoot, 0o644, efiboot)
	for p, n := range medium {
		files[p] = n
	}
	bios := b.prof.Bootloader.BIOS != nil && b.isolinuxDir != ""
	isohdpfx := ""
	if bios {
		cfg, err := b.template("isolinux.cfg", map[string]string{"Version": b.ver, "Cmdline": b.prof.Cmdline})
		if err != nil {
			return "", "", err
		}
		files.Copy(iso.PathIsolinux, 0o644, filepath.Join(b.isolinuxDir, "usr/lib/ISOLINUX/isolinux.bin"))
		files.Copy("isolinux/ldlinux.c32", 0o644, filepath.Join(b.syslinuxDir, "usr/lib/syslinux/modules/bios/ldlinux.c32"))
		files.Data("isolinux/isolinux.cfg", 0o644, cfg)
		isohdpfx = filepath.Join(b.isolinuxDir, "usr/lib/ISOLINUX/isohdpfx.bin")
	}
	err = iso.Write(b.out("iso"), iso.Options{Files: files, BIOS: bios, UEFI: true, Isohdpfx: isohdpfx,
		EFIBootLen: size, Epoch: b.opts.Epoch, Seed: b.seed(), TmpDir: b.work})
	if err != nil {
		return "", "", err
	}
	desc := "El Torito UEFI, hybrid MBR/GPT"
	if bios {
		desc = "El Torito BIOS+UEFI, hybrid MBR/GPT"
	}
	if b.grub != "" {
		desc += "; UEFI through GRUB (grub-mkimage " + strings.Join(grubefi.LiveModules, " ") + " and an early config that finds the ISO)"
	}
	return b.out("iso"), desc, nil
}

func (b *builder) stepNetboot(ctx context.Context) (string, string, error) {
	if !b.outs["netboot"] {
		return "", "skipped", nil
	}
	dir := b.out("netboot")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	for src, dst := range map[string]string{b.out("vmlinuz"): "vmlinuz", b.initrd: "initrd", b.squash: "rootfs.squashfs"} {
		if err := linkOrCopy(src, filepath.Join(dir, dst)); err != nil {
			return "", "", err
		}
	}
	sum, err := fetch.SumFile(b.squash)
	if err != nil {
		return "", "", err
	}
	base := b.opts.NetbootURL
	if base == "" {
		base = netboot.DefaultBase
	}
	if err := os.WriteFile(filepath.Join(dir, "boot.ipxe"), netboot.Script(base, sum, b.prof.Cmdline), 0o644); err != nil {
		return "", "", err
	}
	return dir, "base " + base, nil
}

// files lists the regular files in the output folder, relative, sorted.
func (b *builder) files() ([]string, error) {
	var out []string
	err := filepath.Walk(b.opts.OutDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(b.opts.OutDir, p)
		if rel == "SHA256SUMS" || rel == "manifest.json" {
			return nil
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

func (b *builder) stepSums(ctx context.Context) (string, string, error) {
	list, err := b.files()
	if err != nil {
		return "", "", err
	}
	var buf bytes.Buffer
	seen := map[[2]uint64]string{} // hard links are hashed once
	for _, f := range list {
		p := filepath.Join(b.opts.OutDir, f)
		key, linked := inode(p)
		s, ok := seen[key]
		if !ok || !linked {
			var err error
			if s, err = fetch.SumFile(p); err != nil {
				return "", "", err
			}
			seen[key] = s
		}
		fmt.Fprintf(&buf, "%s  %s\n", s, f)
	}
	p := filepath.Join(b.opts.OutDir, "SHA256SUMS")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	return p, fmt.Sprintf("%d files", len(list)), nil
}

func (b *builder) artifacts() ([]Artifact, error) {
	sums, err := os.ReadFile(filepath.Join(b.opts.OutDir, "SHA256SUMS"))
	if err != nil {
		return nil, err
	}
	var arts []Artifact
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, rel, ok := strings.Cut(l, "  ")
		if !ok {
			continue
		}
		p := filepath.Join(b.opts.OutDir, filepath.FromSlash(rel))
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		arts = append(arts, Artifact{Name: rel, Path: p, Size: fi.Size(), SHA256: sum})
	}
	return arts, nil
}

// linkOrCopy hard-links dst to src (same folder tree, no extra space), or copies.
func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	os.Remove(dst)
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// progressBar draws download progress on w.
func progressBar(w io.Writer) fetch.Progress {
	last := time.Time{}
	return func(done, total int64) {
		if time.Since(last) < 200*time.Millisecond && done != total {
			return
		}
		last = time.Now()
		if total <= 0 {
			fmt.Fprintf(w, "\r  download %s", human(done))
			return
		}
		const width = 30
		n := int(done * width / total)
		fmt.Fprintf(w, "\r  download [%s%s] %3d%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), done*100/total, human(total))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
