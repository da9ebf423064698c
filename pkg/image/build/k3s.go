package build

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/status"
)

// TestFixtureMarker is the string every keso test fixture that stands in
// for k3s carries in its binary (test/k3s-standin, test/realnode). The
// builder refuses a k3s containing it unless Options.TestFixture is set,
// and then records the image as built with a test fixture.
const TestFixtureMarker = "KESO-TEST-FIXTURE-NOT-K3S"

// K3sImagePath is where the root carries status.K3sBinaryPath.
const K3sImagePath = "usr/share/keso/k3s.json"

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

// K3sSumsName is the release's checksum file for an arch
// (sha256sum-amd64.txt, sha256sum-arm64.txt, sha256sum-arm.txt).
func K3sSumsName(arch string) string {
	if arch == "armv7" {
		return "sha256sum-arm.txt"
	}
	return "sha256sum-" + arch + ".txt"
}

// k3s returns the k3s binary and what it is: --k3s FILE (or a folder of
// release assets), else the profile's release from the cache or the
// network, verified by the profile's pin or, when the pin is the all-zeros
// placeholder, by the release's published sha256sum-<arch>.txt. Whatever
// the source, it must be an executable ELF for the image's arch and no
// test fixture unless Options.TestFixture says so.
func (b *builder) k3s(ctx context.Context) (string, *status.K3sBinary, error) {
	k := b.prof.K3s
	var p string
	var info status.K3sBinary
	if b.opts.K3s != "" {
		src := b.opts.K3s
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			// a folder of release assets: k3s, k3s-arm64, k3s-armhf
			src = filepath.Join(src, K3sAssetName(b.prof.Arch))
		}
		if err := checkK3sELF(src, b.prof.Arch); err != nil {
			return "", nil, err
		}
		var err error
		if p, err = b.cache.Get(ctx, src, ""); err != nil {
			return "", nil, fmt.Errorf("k3s from --k3s: %w", err)
		}
		info = status.K3sBinary{SHA256: filepath.Base(p), Source: src, Provenance: status.ProvenanceUserSupplied,
			Verified: "supplied with --k3s, not verified against a release", Version: k3sVersion(src)}
		if k.Pinned() && info.SHA256 == strings.ToLower(k.SHA256) {
			info.Provenance, info.Verified, info.Version = status.ProvenancePinned, "the sha256 pinned in the profile", k.Version
		}
	} else {
		var err error
		if p, info, err = b.k3sRelease(ctx); err != nil {
			return "", nil, err
		}
		if err := checkK3sELF(p, b.prof.Arch); err != nil {
			return "", nil, fmt.Errorf("%w (downloaded from %s)", err, k.URL)
		}
	}
	fixture, err := containsMarker(p)
	if err != nil {
		return "", nil, fmt.Errorf("k3s %s: %w", info.Source, err)
	}
	switch {
	case fixture && !b.opts.TestFixture:
		return "", nil, fmt.Errorf("k3s %s is a keso test fixture (it contains %q), not k3s: keso never ships a stand-in. Pass the real k3s release asset (%s for %s); only the test suite passes --test-fixture",
			info.Source, TestFixtureMarker, K3sAssetName(b.prof.Arch), b.prof.Arch)
	case fixture:
		info.Provenance, info.Verified = status.ProvenanceTestFixture, "a keso test fixture standing in for k3s (--test-fixture): never ship this image"
	}
	return p, &info, nil
}

// k3sRelease downloads the profile's k3s release into the cache and
// verifies it: by the profile's pin, else by the release's sha256sum file.
func (b *builder) k3sRelease(ctx context.Context) (string, status.K3sBinary, error) {
	k := b.prof.K3s
	info := status.K3sBinary{Version: k.Version, Source: k.URL}
	want := strings.ToLower(k.SHA256)
	if k.Pinned() {
		info.Provenance, info.Verified = status.ProvenancePinned, "the sha256 pinned in the profile"
	} else {
		sumsURL := k.URL[:strings.LastIndex(k.URL, "/")+1] + K3sSumsName(b.prof.Arch)
		// The sum read once is kept, so a rebuild from the cache needs no network.
		known := filepath.Join(b.opts.CacheDir, "release-sums", fmt.Sprintf("%x", sha256.Sum256([]byte(sumsURL+"\n"+K3sAssetName(b.prof.Arch)))))
		var sum string
		var err error
		if c, rerr := os.ReadFile(known); rerr == nil && hex64.Match(bytes.TrimSpace(c)) {
			sum = string(bytes.TrimSpace(c))
		} else if sum, err = b.releaseSum(ctx, sumsURL, K3sAssetName(b.prof.Arch)); err == nil {
			os.MkdirAll(filepath.Dir(known), 0o755)
			os.WriteFile(known, []byte(sum+"\n"), 0o644)
		}
		if err != nil {
			return "", info, fmt.Errorf("k3s binary not found: the profile pins no sha256 for k3s %s (all zeros), and %v; pass --k3s /path/to/%s (the release asset from %s), or pin k3s.sha256 in the profile",
				k.Version, err, K3sAssetName(b.prof.Arch), k.URL)
		}
		want = sum
		info.Provenance, info.Verified = status.ProvenanceReleaseSums, "verified against the release's "+K3sSumsName(b.prof.Arch)
	}
	p, err := b.cache.Get(ctx, k.URL, want)
	if err != nil {
		if errors.Is(err, fetch.ErrMismatch) {
			if !k.Pinned() {
				return "", info, fmt.Errorf("k3s %s does not match the release's %s, refusing it: %w", k.Version, K3sSumsName(b.prof.Arch), err)
			}
			return "", info, fmt.Errorf("k3s %s does not match the sha256 pinned in the profile, refusing it: %w", k.Version, err)
		}
		return "", info, fmt.Errorf("k3s binary not found: no network access to %s (%v); download it on another machine and pass --k3s /path/to/k3s (sha256 %s expected for %s)",
			k.URL, err, want, k.Version)
	}
	info.SHA256 = filepath.Base(p)
	return p, info, nil
}

// maxSumsBytes bounds the sha256sum file read (the real ones are ~1 KiB).
const maxSumsBytes = 1 << 20

var hex64 = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// releaseSum fetches a sha256sum-format file and returns the sha256 of
// asset in it.
func (b *builder) releaseSum(ctx context.Context, url, asset string) (string, error) {
	data, _, err := fetch.Get(ctx, b.cache.Client, fetch.Retry{Budget: 30 * time.Second, AttemptTimeout: 30 * time.Second}, url, nil, maxSumsBytes)
	var se fetch.StatusError
	switch {
	case errors.As(err, &se):
		return "", fmt.Errorf("the release's checksums %s could not be fetched: HTTP %d %s", url, se.Code, http.StatusText(se.Code))
	case err != nil:
		return "", fmt.Errorf("the release's checksums could not be fetched: %w", err)
	}
	sum, err := parseSums(data, asset)
	if err != nil {
		return "", fmt.Errorf("the release's checksums %s: %w", url, err)
	}
	return sum, nil
}

// parseSums finds name in sha256sum output ("<hex>  <name>" or
// "<hex> *<name>" per line).
func parseSums(data []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !hex64.MatchString(f[0]) {
			continue
		}
		if strings.TrimPrefix(f[1], "*") == name {
			return strings.ToLower(f[0]), nil
		}
	}
	return "", fmt.Errorf("no line for %s (want \"<sha256>  %s\")", name, name)
}

// elfArch is what an executable for each keso arch looks like.
var elfArch = map[string]struct {
	machine elf.Machine
	class   elf.Class
}{
	"amd64": {elf.EM_X86_64, elf.ELFCLASS64},
	"arm64": {elf.EM_AARCH64, elf.ELFCLASS64},
	"armv7": {elf.EM_ARM, elf.ELFCLASS32},
}

// checkK3sELF refuses a k3s that is not an executable ELF for the image's
// arch: a script, a binary for another CPU (it would only fail on the
// device), a shared library or an object file.
func checkK3sELF(path, arch string) error {
	want, ok := elfArch[arch]
	if !ok {
		return fmt.Errorf("k3s %s: unknown arch %q", path, arch)
	}
	asset := K3sAssetName(arch)
	f, err := elf.Open(path)
	if err != nil {
		head, rerr := readHead(path, 16)
		if rerr != nil {
			return fmt.Errorf("k3s %s: %w", path, rerr)
		}
		what := fmt.Sprintf("it starts with %q", head)
		if bytes.HasPrefix(head, []byte("#!")) {
			what = "it is a script"
		}
		return fmt.Errorf("k3s %s is not an ELF executable (%s): keso ships only the real k3s binary; pass the %s release asset %s", path, what, arch, asset)
	}
	defer f.Close()
	if f.Machine != want.machine || f.Class != want.class {
		return fmt.Errorf("k3s %s is a %v %v binary but the %s image needs %v %v: pass the %s release asset (%s)",
			path, f.Class, f.Machine, arch, want.class, want.machine, arch, asset)
	}
	switch f.Type {
	case elf.ET_EXEC:
		return nil
	case elf.ET_DYN: // a PIE executable, or a shared library
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return nil
			}
		}
		if fl, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(fl) > 0 && fl[0]&uint64(elf.DF_1_PIE) != 0 {
			return nil
		}
		return fmt.Errorf("k3s %s is an ELF shared library (ET_DYN without an interpreter), not an executable: pass the %s release asset %s", path, arch, asset)
	}
	return fmt.Errorf("k3s %s is an ELF %v, not an executable (ET_EXEC): pass the %s release asset %s", path, f.Type, arch, asset)
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:m], nil
}

// containsMarker reports whether the file holds TestFixtureMarker.
func containsMarker(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	marker := []byte(TestFixtureMarker)
	buf := make([]byte, 1<<20)
	keep := 0 // bytes carried over from the last chunk, so a marker across chunks is found
	for {
		n, err := f.Read(buf[keep:])
		if n > 0 {
			if bytes.Contains(buf[:keep+n], marker) {
				return true, nil
			}
			end := keep + n
			keep = min(len(marker)-1, end)
			copy(buf, buf[end-keep:end])
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// k3sVersionRE finds k3s's version in the -ldflags a Go binary records.
var k3sVersionRE = regexp.MustCompile(`k3s-io/k3s/pkg/version\.Version=(\S+)`)

// k3sVersion is the k3s version a binary says it is (the -X flag in its
// Go build info), "" when it does not say.
func k3sVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "-ldflags" {
			if m := k3sVersionRE.FindStringSubmatch(s.Value); m != nil {
				return strings.Trim(m[1], `"'`)
			}
		}
	}
	return ""
}
