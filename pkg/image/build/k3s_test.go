package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/status"
)

// exeELF returns a minimal ELF header of the given class, machine and type,
// followed by payload: all debug/elf and the builder read.
func exeELF(class elf.Class, machine elf.Machine, typ elf.Type, payload string) []byte {
	le := binary.LittleEndian
	var b []byte
	if class == elf.ELFCLASS64 {
		b = make([]byte, 64)
		le.PutUint16(b[52:], 64) // e_ehsize
		le.PutUint16(b[54:], 56) // e_phentsize
		le.PutUint16(b[58:], 64) // e_shentsize
	} else {
		b = make([]byte, 52)
		le.PutUint16(b[40:], 52)
		le.PutUint16(b[42:], 32)
		le.PutUint16(b[46:], 40)
	}
	copy(b, []byte{0x7f, 'E', 'L', 'F', byte(class), 1, 1})
	le.PutUint16(b[16:], uint16(typ))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], 1)
	return append(b, payload...)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckK3sELF(t *testing.T) {
	amd64 := exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, "k3s")
	for _, tc := range []struct {
		name, arch string
		data       []byte
		want       string // "" = accepted
	}{
		{"amd64 executable", "amd64", amd64, ""},
		{"arm64 executable", "arm64", exeELF(elf.ELFCLASS64, elf.EM_AARCH64, elf.ET_EXEC, ""), ""},
		{"armv7 executable", "armv7", exeELF(elf.ELFCLASS32, elf.EM_ARM, elf.ET_EXEC, ""), ""},
		{"shell script", "amd64", []byte("#!/bin/sh\necho k3s\n"), "is not an ELF executable (it is a script): keso ships only the real k3s binary; pass the amd64 release asset k3s"},
		{"text", "amd64", []byte("hello"), `is not an ELF executable (it starts with "hello")`},
		{"empty", "arm64", nil, "is not an ELF executable"},
		{"amd64 for arm64", "arm64", amd64, "is a ELFCLASS64 EM_X86_64 binary but the arm64 image needs ELFCLASS64 EM_AARCH64: pass the arm64 release asset (k3s-arm64)"},
		{"aarch64 for armv7", "armv7", exeELF(elf.ELFCLASS64, elf.EM_AARCH64, elf.ET_EXEC, ""), "needs ELFCLASS32 EM_ARM: pass the armv7 release asset (k3s-armhf)"},
		{"32-bit x86 for amd64", "amd64", exeELF(elf.ELFCLASS32, elf.EM_386, elf.ET_EXEC, ""), "is a ELFCLASS32 EM_386 binary"},
		{"object file", "amd64", koELF("depends=\x00"), "is an ELF ET_REL, not an executable"},
		{"shared library", "amd64", exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_DYN, ""), "is an ELF shared library"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "k3s", tc.data)
			err := checkK3sELF(p, tc.arch)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
				t.Errorf("err = %v, want one naming %s and containing %q", err, p, tc.want)
			}
		})
	}
	if err := checkK3sELF(filepath.Join(t.TempDir(), "nope"), "amd64"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing file: err = %v", err)
	}
}

// TestExecutablePIEIsAccepted: a PIE (ET_DYN with an interpreter) is an
// executable. The host's own /bin/true is one on Debian.
func TestExecutablePIEIsAccepted(t *testing.T) {
	f, err := elf.Open("/bin/true")
	if err != nil {
		t.Skipf("SKIP: /bin/true: %v", err)
	}
	typ, machine := f.Type, f.Machine
	f.Close()
	if typ != elf.ET_DYN || machine != elf.EM_X86_64 {
		t.Skipf("SKIP: /bin/true is %v %v, not an amd64 PIE", typ, machine)
	}
	if err := checkK3sELF("/bin/true", "amd64"); err != nil {
		t.Errorf("PIE refused: %v", err)
	}
}

func TestContainsMarker(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"none", bytes.Repeat([]byte("KESO-TEST-FIXTURE-"), 100000), false},
		{"start", []byte(TestFixtureMarker + "rest"), true},
		// across the 1 MiB read boundary
		{"across chunks", append(bytes.Repeat([]byte{0}, 1<<20-5), TestFixtureMarker...), true},
		{"second chunk", append(bytes.Repeat([]byte{0}, 3<<20), TestFixtureMarker...), true},
	} {
		got, err := containsMarker(writeFile(t, "f", tc.data))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseSums(t *testing.T) {
	sums := "aaaa  k3s-airgap-images-amd64.tar\n" + strings.Repeat("1", 64) + "  k3s-airgap-images-amd64.tar.zst\n" +
		strings.Repeat("A", 64) + "  k3s\n" + strings.Repeat("2", 64) + " *k3s-arm64\n"
	for name, want := range map[string]string{"k3s": strings.Repeat("a", 64), "k3s-arm64": strings.Repeat("2", 64)} {
		if got, err := parseSums([]byte(sums), name); err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := parseSums([]byte(sums), "k3s-armhf"); err == nil || !strings.Contains(err.Error(), "no line for k3s-armhf") {
		t.Errorf("missing asset: err = %v", err)
	}
}

// release serves a k3s release over HTTPS like GitHub's download URLs:
// <base>/v1.31.4%2Bk3s1/<asset> and <base>/v1.31.4%2Bk3s1/sha256sum-<arch>.txt.
type release struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte // decoded path -> content
	hits  map[string]int
}

func newRelease(t *testing.T) *release {
	r := &release{files: map[string][]byte{}, hits: map[string]int{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits[req.URL.Path]++
		b, ok := r.files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *release) put(name string, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files["/v1.31.4+k3s1/"+name] = b
}

func (r *release) builder(t *testing.T, arch, pin, cache string) *builder {
	p := &profile.Profile{Arch: arch, Version: "1", K3s: profile.K3s{Version: "v1.31.4+k3s1",
		URL: r.srv.URL + "/v1.31.4%2Bk3s1/" + K3sAssetName(arch), SHA256: pin}}
	return newBuilder(Options{Profile: p, CacheDir: cache, HTTPClient: r.srv.Client()})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestK3sReleaseVerifiedAgainstSha256sumFile: with the all-zeros pin, the
// builder fetches the release's sha256sum-<arch>.txt over HTTPS from
// beside the asset and checks the download against it.
func TestK3sReleaseVerifiedAgainstSha256sumFile(t *testing.T) {
	ctx := context.Background()
	good := exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, "the real k3s")
	arm := exeELF(elf.ELFCLASS32, elf.EM_ARM, elf.ET_EXEC, "the real k3s for armhf")

	t.Run("good binary passes", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", good)
		r.put("sha256sum-amd64.txt", []byte(strings.Repeat("f", 64)+"  k3s-airgap-images-amd64.tar\n"+sum(good)+"  k3s\n"))
		cache := t.TempDir()
		p, info, err := r.builder(t, "amd64", zeros, cache).k3s(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, good) {
			t.Errorf("k3s path %s does not hold the release asset", p)
		}
		want := status.K3sBinary{SHA256: sum(good), Version: "v1.31.4+k3s1", Provenance: status.ProvenanceReleaseSums,
			Verified: "verified against the release's sha256sum-amd64.txt", Source: r.srv.URL + "/v1.31.4%2Bk3s1/k3s"}
		if *info != want {
			t.Errorf("info = %+v, want %+v", *info, want)
		}
		// A rebuild from the cache needs no network: the sum read once is kept.
		r.srv.Close()
		if _, info, err := r.builder(t, "amd64", zeros, cache).k3s(ctx); err != nil || info.Provenance != status.ProvenanceReleaseSums {
			t.Errorf("rebuild offline: %+v, %v", info, err)
		}
	})
	t.Run("armv7 uses sha256sum-arm.txt and k3s-armhf", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s-armhf", arm)
		r.put("sha256sum-arm.txt", []byte(sum(good)+"  k3s\n"+sum(arm)+"  k3s-armhf\n"))
		_, info, err := r.builder(t, "armv7", zeros, t.TempDir()).k3s(ctx)
		if err != nil || info.SHA256 != sum(arm) || info.Verified != "verified against the release's sha256sum-arm.txt" {
			t.Errorf("info = %+v, err = %v", info, err)
		}
	})
	t.Run("wrong hash is refused", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", []byte("tampered"))
		r.put("sha256sum-amd64.txt", []byte(sum(good)+"  k3s\n"))
		_, _, err := r.builder(t, "amd64", zeros, t.TempDir()).k3s(ctx)
		for _, want := range []string{"k3s v1.31.4+k3s1 does not match the release's sha256sum-amd64.txt, refusing it", "want " + sum(good), "sha256 mismatch"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to contain %q", err, want)
			}
		}
	})
	t.Run("missing sha256sum file is refused", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", good)
		_, _, err := r.builder(t, "amd64", zeros, t.TempDir()).k3s(ctx)
		for _, want := range []string{"the profile pins no sha256 for k3s v1.31.4+k3s1 (all zeros)", r.srv.URL + "/v1.31.4%2Bk3s1/sha256sum-amd64.txt could not be fetched: HTTP 404", "--k3s /path/to/k3s"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to contain %q", err, want)
			}
		}
		if r.hits["/v1.31.4+k3s1/k3s"] != 0 {
			t.Error("the binary was downloaded although nothing could verify it")
		}
	})
	t.Run("sha256sum file without the asset is refused", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s-arm64", good)
		r.put("sha256sum-arm64.txt", []byte(sum(good)+"  k3s\n"))
		_, _, err := r.builder(t, "arm64", zeros, t.TempDir()).k3s(ctx)
		if err == nil || !strings.Contains(err.Error(), `no line for k3s-arm64`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a real pin wins", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", good)
		r.put("sha256sum-amd64.txt", []byte(strings.Repeat("e", 64)+"  k3s\n")) // would refuse it
		_, info, err := r.builder(t, "amd64", sum(good), t.TempDir()).k3s(ctx)
		if err != nil || info.Provenance != status.ProvenancePinned || info.Verified != "the sha256 pinned in the profile" {
			t.Errorf("info = %+v, err = %v", info, err)
		}
		if n := r.hits["/v1.31.4+k3s1/sha256sum-amd64.txt"]; n != 0 {
			t.Errorf("sha256sum file fetched %d times with a real pin", n)
		}
	})
	t.Run("a wrong pin is refused", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", good)
		r.put("sha256sum-amd64.txt", []byte(sum(good)+"  k3s\n"))
		_, _, err := r.builder(t, "amd64", strings.Repeat("e", 64), t.TempDir()).k3s(ctx)
		if err == nil || !strings.Contains(err.Error(), "does not match the sha256 pinned in the profile") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a verified download that is no amd64 executable is refused", func(t *testing.T) {
		r := newRelease(t)
		r.put("k3s", arm)
		r.put("sha256sum-amd64.txt", []byte(sum(arm)+"  k3s\n"))
		_, _, err := r.builder(t, "amd64", zeros, t.TempDir()).k3s(ctx)
		if err == nil || !strings.Contains(err.Error(), "EM_ARM binary but the amd64 image needs") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestK3sFlagProvenance: --k3s FILE is user-supplied, or pinned when it is
// the pinned release; a file carrying the fixture marker is refused unless
// TestFixture is set, and is then recorded as a test fixture.
func TestK3sFlagProvenance(t *testing.T) {
	ctx := context.Background()
	real := exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, "k3s")
	fixture := exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, "stand-in "+TestFixtureMarker+" for tests")
	b := func(pin string, testFixture bool, file string) *builder {
		p := &profile.Profile{Arch: "amd64", Version: "1", K3s: profile.K3s{Version: "v1.31.4+k3s1", URL: "http://127.0.0.1:1/k3s", SHA256: pin}}
		return newBuilder(Options{Profile: p, CacheDir: t.TempDir(), K3s: file, TestFixture: testFixture})
	}
	realFile, fixFile := writeFile(t, "k3s", real), writeFile(t, "k3s", fixture)
	for _, tc := range []struct {
		name        string
		pin         string
		testFixture bool
		file        string
		want        string // provenance, or the error
	}{
		{"user-supplied", zeros, false, realFile, status.ProvenanceUserSupplied},
		{"the pinned release", sum(real), false, realFile, status.ProvenancePinned},
		{"fixture refused", zeros, false, fixFile, "is a keso test fixture (it contains \"KESO-TEST-FIXTURE-NOT-K3S\"), not k3s: keso never ships a stand-in"},
		{"fixture with --test-fixture", zeros, true, fixFile, status.ProvenanceTestFixture},
		{"--test-fixture with real k3s", zeros, true, realFile, status.ProvenanceUserSupplied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, info, err := b(tc.pin, tc.testFixture, tc.file).k3s(ctx)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = info.Provenance
				if info.SHA256 == "" || info.Source != tc.file {
					t.Errorf("info = %+v", info)
				}
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStandinCarriesTheMarker builds test/k3s-standin as the test suite does
// (-trimpath, -s -w) and checks the linker kept the marker; and that a Go
// binary's k3s version (-X …/pkg/version.Version) is read back.
func TestStandinCarriesTheMarker(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("SKIP: no go tool")
	}
	dir := t.TempDir()
	standin := filepath.Join(dir, "k3s-standin")
	versioned := filepath.Join(dir, "k3s-versioned")
	for _, c := range [][]string{
		{"build", "-trimpath", "-ldflags=-s -w", "-o", standin, "./test/k3s-standin"},
		{"build", "-ldflags=-s -w -X github.com/k3s-io/k3s/pkg/version.Version=v1.31.4+k3s1", "-o", versioned, "./test/k3s-standin"},
	} {
		cmd := exec.Command("go", c...)
		cmd.Dir = "../../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", c, err, out)
		}
	}
	if err := checkK3sELF(standin, "amd64"); err != nil {
		t.Errorf("stand-in: %v", err)
	}
	if ok, err := containsMarker(standin); !ok || err != nil {
		t.Errorf("stand-in built with -s -w lacks %s (%v)", TestFixtureMarker, err)
	}
	if got := k3sVersion(versioned); got != "v1.31.4+k3s1" {
		t.Errorf("k3sVersion = %q, want v1.31.4+k3s1", got)
	}
	if got := k3sVersion(standin); got != "" {
		t.Errorf("k3sVersion of a binary without the flag = %q, want \"\"", got)
	}
}
