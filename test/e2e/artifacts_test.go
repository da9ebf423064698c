package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/sign"
	"golang.org/x/sys/unix"
)

// Artifacts are the outputs of keso-build for one arch, built once per test
// binary run (and cached across runs by a hash of their inputs).
type Artifacts struct {
	Arch    string
	Dir     string // <out>/<arch>
	Version string
	Files   map[string]string // artifact name -> path
	SHA256  map[string]string
}

type manifest struct {
	Arch      string `json:"arch"`
	Version   string `json:"version"`
	OutDir    string `json:"out_dir"`
	Artifacts []struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	} `json:"artifacts"`
}

var (
	buildMu   sync.Mutex // guards the maps and archMu
	archMu    = map[string]*sync.Mutex{}
	buildDone = map[string]*Artifacts{}
	buildErr  = map[string]error{}
)

// lockArch serialises builds of one arch; other arches go on in parallel.
func lockArch(arch string) func() {
	buildMu.Lock()
	m := archMu[arch]
	if m == nil {
		m = &sync.Mutex{}
		archMu[arch] = m
	}
	buildMu.Unlock()
	m.Lock()
	return m.Unlock
}

// repoRoot is the checkout this test runs in.
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// cacheRoot holds built artifacts outside the repository.
func cacheRoot() string {
	if d := os.Getenv("KESO_E2E_CACHE"); d != "" {
		return d
	}
	return "/var/tmp/keso-e2e"
}

// inputHash hashes everything that goes into an image: Go sources, the
// module files, profiles, overlay and bootloader templates.
func inputHash(root, arch string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "arch %s\n", arch)
	var files []string
	for _, top := range []string{"cmd", "pkg", "test/k3s-standin", "test/realnode", "images", "iso", "overlay", "go.mod", "go.sum", "scripts/fetch-inputs.sh"} {
		p := filepath.Join(root, top)
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "/testdata/") {
				return nil
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", strings.TrimPrefix(f, root))
		io.Copy(h, fh)
		fh.Close()
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// goArch maps a keso arch to GOARCH/GOARM.
func goEnv(arch string) []string {
	switch arch {
	case "armv7":
		return []string{"GOARCH=arm", "GOARM=7"}
	default:
		return []string{"GOARCH=" + arch}
	}
}

// artifacts builds (or reuses) the images for arch with the k3s stand-in,
// and skips the test loudly when the builder cannot run here.
func artifacts(t testing.TB, arch string) *Artifacts {
	t.Helper()
	defer lockArch(arch)()
	buildMu.Lock()
	a, err := buildDone[arch], buildErr[arch]
	buildMu.Unlock()
	if a != nil {
		return a
	}
	if err != nil {
		t.Fatalf("build %s images (earlier attempt): %v", arch, err)
	}
	if m := os.Getenv("KESO_E2E_MANIFEST_" + strings.ToUpper(arch)); m != "" {
		// Prebuilt artifacts: the JSON manifest keso-build --json printed
		// (the object for this arch, or a one-element list).
		b, err := os.ReadFile(m)
		if err == nil {
			if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "[") {
				var l []json.RawMessage
				if err = json.Unmarshal(b, &l); err == nil && len(l) == 1 {
					b = l[0]
				}
			}
		}
		var a *Artifacts
		if err == nil {
			a, err = loadManifest(b)
		}
		if err != nil {
			t.Fatalf("KESO_E2E_MANIFEST_%s=%s: %v", strings.ToUpper(arch), m, err)
		}
		t.Logf("using prebuilt %s artifacts from %s", arch, m)
		buildMu.Lock()
		buildDone[arch] = a
		buildMu.Unlock()
		return a
	}
	root := repoRoot()
	if _, err := os.Stat(filepath.Join(root, "images", arch+".yaml")); err != nil {
		t.Skipf("SKIP: no image profile images/%s.yaml yet (the builder has no %s profile); cannot build %s artifacts", arch, arch, arch)
	}
	a, err = build(t, root, arch, Variant{})
	buildMu.Lock()
	buildDone[arch], buildErr[arch] = a, err
	buildMu.Unlock()
	if err != nil {
		t.Fatalf("build %s images: %v", arch, err)
	}
	return a
}

// Variant is a release other than the default test build: its own
// version, signed with the test release key, optionally with another kernel
// command line or a broken k3s stand-in (the upgrade tests' v1 and v2).
type Variant struct {
	Name    string // cache key, e.g. "v2-panic"
	Version string
	Signed  bool   // sign with testReleaseKey
	Cmdline string // replaces the profile's kernel command line
	// RPiCmdline replaces the Raspberry Pi card's (rpi.cmdline), e.g. to
	// see the card's console on QEMU virt's serial port (ttyAMA0).
	RPiCmdline string
	Outputs    []string // default: the profile's
	// StandinExit builds the stand-in as a k3s that exits at once with
	// this status (test/k3s-standin's exitAtOnce).
	StandinExit string
	// RealNode ships the real-node fixture (test/realnode) in k3s's place
	// instead of the recording stand-in; with RealNodeExitAfter it exits
	// that long after it starts (a broken release).
	RealNode          bool
	RealNodeExitAfter string
	// Extra is a tree added to the root (keso-build --extra): the
	// real-node test's container runtime and kubelet. Its path must be
	// stable across runs (it is part of the cache key).
	Extra string
	// Compression replaces the profile's root compression. A signed
	// variant (an upgrade release) without one is built with zstd: the
	// profiles ship uncompressed roots (for deltas), and the upgrade
	// tests that fetch, write and hash whole images two dozen times
	// under TCG (power cuts, rollbacks, the real node's Jobs) test the
	// order of an upgrade's writes, not the compression; that would cost
	// CI ~2.5× their bytes. The default build, every boot and install
	// test, and the delta releases (deltaReleases) are uncompressed.
	Compression string
	// Epoch is SOURCE_DATE_EPOCH for keso-build (default: the last
	// commit's time): two builds with one epoch must be byte-identical.
	Epoch string
}

func (v Variant) key() string {
	if v.Name == "" {
		return ""
	}
	return fmt.Sprintf("-%s-%x", v.Name, sha256.Sum256([]byte(fmt.Sprintf("%+v", v))))[:len(v.Name)+10]
}

// variant builds (or reuses) a release variant of arch's images.
func variant(t testing.TB, arch string, v Variant) *Artifacts {
	t.Helper()
	if v.Signed && v.Compression == "" {
		v.Compression = "zstd"
	}
	key := arch + v.key()
	defer lockArch(key)()
	buildMu.Lock()
	a, err := buildDone[key], buildErr[key]
	buildMu.Unlock()
	if a != nil {
		return a
	}
	if err != nil {
		t.Fatalf("build %s images (earlier attempt): %v", key, err)
	}
	a, err = build(t, repoRoot(), arch, v)
	buildMu.Lock()
	buildDone[key], buildErr[key] = a, err
	buildMu.Unlock()
	if err != nil {
		t.Fatalf("build %s images: %v", key, err)
	}
	return a
}

// testReleaseKey is the signing key of the test releases, made once and
// kept beside the cached artifacts (so cached v1 and v2 builds trust each
// other; its digest is part of every signed variant's cache key). It
// returns the private key file and that digest.
func testReleaseKey() (string, string, error) {
	p := filepath.Join(cacheRoot(), "test-release.key")
	if _, err := os.Stat(p); err != nil {
		_, priv, err := sign.GenerateKey(nil)
		if err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(cacheRoot(), 0o755); err != nil {
			return "", "", err
		}
		// First writer wins: tests building signed variants in parallel
		// (in this process or another) must all use one key, so the key
		// is linked into place only if no other is there yet.
		tmp, err := os.CreateTemp(cacheRoot(), "test-release.key.*")
		if err != nil {
			return "", "", err
		}
		defer os.Remove(tmp.Name())
		_, werr := tmp.Write(sign.MarshalPrivate(priv))
		if cerr := tmp.Close(); werr != nil || cerr != nil {
			return "", "", errors.Join(werr, cerr)
		}
		if err := os.Link(tmp.Name(), p); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", "", err
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", "", err
	}
	return p, fmt.Sprintf("%x", sha256.Sum256(b))[:8], nil
}

func build(t testing.TB, root, arch string, v Variant) (*Artifacts, error) {
	hash, err := inputHash(root, arch)
	if err != nil {
		return nil, fmt.Errorf("hash inputs: %w", err)
	}
	hash += v.key()
	var keyFile string
	if v.Signed {
		kf, sum, err := testReleaseKey()
		if err != nil {
			return nil, fmt.Errorf("test release key: %w", err)
		}
		keyFile, hash = kf, hash+"-"+sum
	}
	out := filepath.Join(cacheRoot(), hash)
	manPath := filepath.Join(out, arch+".manifest.json")
	// Other test processes (other users, other packages) may build the
	// same inputs at the same time: one builds, the others wait and reuse.
	if err := os.MkdirAll(cacheRoot(), 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(cacheRoot(), hash+"-"+arch+".lock"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if b, err := os.ReadFile(manPath); err == nil {
		if a, err := loadManifest(b); err == nil {
			t.Logf("using cached %s artifacts in %s", arch, a.Dir)
			now := time.Now()
			os.Chtimes(out, now, now) // in use: keep it from pruning
			return a, nil
		}
	}
	start := time.Now()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	// Inputs: the builder's own fetch script (idempotent, apt-get download).
	fetch := exec.Command(filepath.Join(root, "scripts/fetch-inputs.sh"), arch)
	fetch.Dir = root
	if b, err := fetch.CombinedOutput(); err != nil {
		// keso-build is the judge: it names any .deb that is really
		// missing. The script failing with everything already in place
		// must not stop the boots.
		t.Logf("WARNING: scripts/fetch-inputs.sh %s failed (%v); trying keso-build with the packages already fetched:\n%s", arch, err, b)
	}
	standin := filepath.Join(out, "k3s-standin-"+arch)
	ldflags, fixture := "-s -w", "./test/k3s-standin"
	if v.StandinExit != "" {
		ldflags += " -X main.exitAtOnce=" + v.StandinExit
	}
	if v.RealNode {
		standin, fixture = filepath.Join(out, "k3s-realnode-"+arch), "./test/realnode"
		if v.RealNodeExitAfter != "" {
			ldflags += " -X main.exitAfter=" + v.RealNodeExitAfter
		}
	}
	gb := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", standin, fixture)
	gb.Dir = root
	gb.Env = append(append(os.Environ(), "CGO_ENABLED=0"), goEnv(arch)...)
	if b, err := gb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the k3s stand-in for %s: %v\n%s", arch, err, b)
	}
	kb := filepath.Join(out, "keso-build")
	gb = exec.Command("go", "build", "-o", kb, "./cmd/keso-build")
	gb.Dir = root
	if b, err := gb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build keso-build: %v\n%s", err, b)
	}
	logf, err := os.Create(filepath.Join(out, arch+".build.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// --test-fixture: the stand-in carries the test-fixture marker, which
	// keso-build refuses otherwise (it never ships a stand-in as k3s).
	args := []string{"--repo", root, "--out", out, "--k3s", standin, "--test-fixture", "--json"}
	if v.Version != "" {
		args = append(args, "--version", v.Version)
	}
	if v.Signed {
		args = append(args, "--sign-key", keyFile)
	}
	if len(v.Outputs) > 0 {
		args = append(args, "--outputs", strings.Join(v.Outputs, ","))
	}
	if v.Extra != "" {
		args = append(args, "--extra", v.Extra)
	}
	prof := arch
	if v.Cmdline != "" || v.RPiCmdline != "" || v.Compression != "" {
		// A copy of the profile with another command line or compression.
		b, err := os.ReadFile(filepath.Join(root, "images", arch+".yaml"))
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "cmdline:") && v.Cmdline != "" {
				lines[i] = "cmdline: " + v.Cmdline
			}
			if strings.HasPrefix(l, "  cmdline:") && v.RPiCmdline != "" {
				lines[i] = "  cmdline: " + v.RPiCmdline // rpi.cmdline
			}
			if strings.HasPrefix(l, "compression:") && v.Compression != "" {
				lines[i] = "compression: " + v.Compression
			}
		}
		prof = filepath.Join(out, arch+".yaml")
		if err := os.WriteFile(prof, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(kb, append(args, prof)...)
	cmd.Dir = root
	if v.Epoch != "" {
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+v.Epoch)
	}
	cmd.Stderr = logf
	b, err := cmd.Output()
	if err != nil {
		lb, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("keso-build %s: %v\n%s", arch, err, lb)
	}
	var mans []json.RawMessage
	if err := json.Unmarshal(b, &mans); err != nil || len(mans) != 1 {
		return nil, fmt.Errorf("keso-build --json: want one manifest, got %q (%v)", b, err)
	}
	a, err := loadManifest(mans[0])
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(manPath, mans[0], 0o644); err != nil {
		return nil, err
	}
	t.Logf("built %s artifacts in %s (%s)", arch, a.Dir, time.Since(start).Round(time.Second))
	pruneCache(t, out)
	return a, nil
}

func loadManifest(b []byte) (*Artifacts, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	a := &Artifacts{Arch: m.Arch, Dir: m.OutDir, Version: m.Version, Files: map[string]string{}, SHA256: map[string]string{}}
	for _, f := range m.Artifacts {
		p := f.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(m.OutDir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("manifest names %s but: %w", p, err)
		}
		a.Files[f.Name] = p
		a.SHA256[f.Name] = f.SHA256
	}
	return a, nil
}

// file returns the path of a named artifact or fails the test.
func (a *Artifacts) file(t testing.TB, name string) string {
	t.Helper()
	p, ok := a.Files[name]
	if !ok {
		names := make([]string, 0, len(a.Files))
		for n := range a.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("keso-build wrote no %q artifact for %s (it wrote: %s)", name, a.Arch, strings.Join(names, ", "))
	}
	return p
}

// pruneCache removes artifact folders of other input hashes that nobody
// touched for two hours (each holds a multi-GiB raw image).
func pruneCache(t testing.TB, keep string) {
	ents, err := os.ReadDir(filepath.Dir(keep))
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(filepath.Dir(keep), e.Name())
		fi, err := e.Info()
		if err != nil || !e.IsDir() || p == keep || time.Since(fi.ModTime()) < 2*time.Hour {
			continue
		}
		// The stamp that says a cached tree is complete goes with it.
		os.Remove(p + ".complete")
		if err := os.RemoveAll(p); err == nil {
			t.Logf("pruned old e2e artifacts %s", p)
		}
	}
}
