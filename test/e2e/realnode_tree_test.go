package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/image/sharedlib"
)

// realNodeTreeVersion changes when what realNodeTree lays out changes.
const realNodeTreeVersion = "2"

// realNodeDebs are the Debian packages the real-node tree carries
// (scripts/fetch-inputs.sh amd64 downloads them), and from each the files
// it takes: package path -> path in the root.
var realNodeDebs = map[string]map[string]string{
	"containerd": {
		"usr/bin/containerd":              "usr/bin/containerd",
		"usr/bin/containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2",
		"usr/bin/ctr":                     "usr/bin/ctr",
	},
	"runc": {"usr/sbin/runc": "usr/bin/runc"},
	"containernetworking-plugins": {
		"usr/lib/cni/bridge":     "usr/libexec/cni/bridge",
		"usr/lib/cni/host-local": "usr/libexec/cni/host-local",
		"usr/lib/cni/loopback":   "usr/libexec/cni/loopback",
	},
	// iptables (legacy) for the bridge plugin's masquerading: pods
	// reach the host (the release server) through the node's address,
	// as with k3s's flannel, which brings its own iptables too.
	"iptables": {
		"usr/sbin/xtables-legacy-multi": "usr/sbin/xtables-legacy-multi",
	},
	"libc6":                   nil, // libraries only
	"libseccomp2":             nil,
	"libxtables12":            nil,
	"libip4tc2":               nil,
	"libip6tc2":               nil,
	"libnftnl11":              nil,
	"libmnl0":                 nil,
	"libnetfilter-conntrack3": nil,
	"libnfnetlink0":           nil,
}

// xtablesLinks are the names xtables-legacy-multi answers to.
var xtablesLinks = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// realNodeTree lays out the real-node fixture's runtime for an amd64 test
// image (keso-build --extra): Debian's containerd, runc and CNI plugins
// with their shared-library closure, the kubelet v1.37.2 built from Go
// modules (scripts/kube-tools.sh), and a pause image in the air-gap folder
// that keso links into k3s's image folder. It is cached outside the repo
// under a stable path keyed by its inputs, since that path is part of the
// image variants' cache key.
func realNodeTree(t testing.TB, assets string) string {
	t.Helper()
	debDir := os.Getenv("KESO_DEBS")
	if debDir == "" {
		debDir = "/var/cache/keso/debs"
	}
	h := sha256.New()
	fmt.Fprintf(h, "realnode tree %s\n", realNodeTreeVersion)
	debs := map[string]string{}
	var pkgs []string
	for p := range realNodeDebs {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		m, _ := filepath.Glob(filepath.Join(debDir, p+"_*_amd64.deb"))
		if len(m) == 0 {
			t.Fatalf("no %s amd64 package in %s: run scripts/fetch-inputs.sh amd64 (make test does)", p, debDir)
		}
		sort.Strings(m)
		debs[p] = m[len(m)-1]
		fmt.Fprintf(h, "%s\n", filepath.Base(debs[p]))
	}
	kubelet := filepath.Join(assets, "kubelet")
	kb, err := os.ReadFile(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(kb)
	src, err := os.ReadFile(filepath.Join(repoRoot(), "test/realnode/pause/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	h.Write(src)
	dir := filepath.Join(cacheRoot(), "realnode-tree-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dir + ".complete"); err == nil {
		if _, err := os.Stat(dir); err == nil {
			// In use: keep it from pruneCache, which removes folders
			// untouched for two hours when any image is built (here,
			// this test's own images, which this tree goes into).
			now := time.Now()
			os.Chtimes(dir, now, now)
			return dir
		}
		// A stamp without its tree (an older pruneCache removed only the
		// tree): build it again.
		os.Remove(dir + ".complete")
	}
	os.RemoveAll(dir)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	var trees []string
	var progs []string
	for _, p := range pkgs {
		unpacked := filepath.Join(tmp, p)
		if err := deb.Extract(debs[p], unpacked, nil); err != nil {
			t.Fatalf("unpack %s: %v", debs[p], err)
		}
		trees = append(trees, unpacked)
		for from, to := range realNodeDebs[p] {
			copyFile(t, filepath.Join(unpacked, from), filepath.Join(root, to), 0o755)
			progs = append(progs, filepath.Join(unpacked, from))
		}
	}
	// iptables' extensions are loaded with dlopen: ship them all, and
	// their libraries.
	xt := "usr/lib/x86_64-linux-gnu/xtables"
	exts, _ := filepath.Glob(filepath.Join(tmp, "iptables", xt, "*.so"))
	for _, e := range exts {
		dst := filepath.Join(root, xt, filepath.Base(e))
		if fi, err := os.Lstat(e); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(e)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		copyFile(t, e, dst, 0o644)
		progs = append(progs, e)
	}
	for _, l := range xtablesLinks {
		if err := os.Symlink("xtables-legacy-multi", filepath.Join(root, "usr/sbin", l)); err != nil {
			t.Fatal(err)
		}
	}
	triplet, _ := sharedlib.Triplet("amd64")
	libs := map[string]string{}
	interp := ""
	for _, prog := range progs {
		res, err := sharedlib.Closure(prog, trees, triplet)
		if err != nil {
			t.Fatalf("shared libraries of %s: %v", prog, err)
		}
		for _, l := range res.Libs {
			libs[l.Dest] = l.Source
		}
		if res.Interp != "" {
			interp = res.Interp
		}
	}
	for dest, src := range libs {
		copyFile(t, src, filepath.Join(root, dest), 0o755)
	}
	if interp != "" {
		if _, ok := libs[interp]; !ok {
			target := ""
			for dest := range libs {
				if path.Base(dest) == path.Base(interp) {
					target = dest
				}
			}
			if target == "" {
				t.Fatalf("the interpreter %s is not among the libraries found", interp)
			}
			rel, _ := filepath.Rel(path.Dir(interp), target)
			os.MkdirAll(filepath.Join(root, path.Dir(interp)), 0o755)
			if err := os.Symlink(rel, filepath.Join(root, interp)); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFile(t, kubelet, filepath.Join(root, "usr/bin/kubelet"), 0o755)
	writePauseImage(t, filepath.Join(root, "usr/share/keso/images/pause.tar"))
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("cp", "-a", root, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", dir, err, b)
	}
	if err := os.WriteFile(dir+".complete", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// writePauseImage writes registry.k8s.io/pause:3.10 (the sandbox image the
// fixture's containerd uses) as an image tarball: one layer holding a
// static /pause built from test/realnode/pause.
func writePauseImage(t testing.TB, dst string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pause")
	gb := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./test/realnode/pause")
	gb.Dir = repoRoot()
	gb.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, b)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg})
	tw.Write(prog)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Config.Entrypoint = "amd64", "linux", []string{"/pause"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag("registry.k8s.io/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(dst, ref, img); err != nil {
		t.Fatalf("write %s: %v", dst, err)
	}
}
