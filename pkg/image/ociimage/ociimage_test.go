package ociimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWriteFileRoundTrip(t *testing.T) {
	bin := bytes.Repeat([]byte("\x7fELF keso"), 1000)
	for _, arch := range []string{"amd64", "arm64", "arm"} {
		t.Run(arch, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "var/lib/rancher/k3s/agent/images/keso-operator.tar")
			ref := "docker.io/keso-os/keso:1.1.0"
			if err := WriteFile(p, bin, Options{Refs: []string{ref}, Arch: arch}); err != nil {
				t.Fatal(err)
			}
			local, _ := name.NewTag(LocalRef)
			if _, err := tarball.ImageFromPath(p, &local); err != nil {
				t.Fatalf("read back %s as %s: %v", p, LocalRef, err)
			}
			tag, _ := name.NewTag(ref)
			img, err := tarball.ImageFromPath(p, &tag)
			if err != nil {
				t.Fatalf("read back %s: %v", p, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			wantVariant := map[string]string{"arm": "v7"}[arch]
			if cf.OS != "linux" || cf.Architecture != arch || cf.Variant != wantVariant || cf.Config.Entrypoint[0] != "/keso" {
				t.Errorf("config = %s/%s/%s entrypoint %v, want linux/%s/%s [/keso]", cf.OS, cf.Architecture, cf.Variant, cf.Config.Entrypoint, arch, wantVariant)
			}
			layers, _ := img.Layers()
			if len(layers) != 1 {
				t.Fatalf("%d layers, want 1", len(layers))
			}
			rc, err := layers[0].Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			tr := tar.NewReader(rc)
			found := false
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Name == "keso" {
					found = true
					got, _ := io.ReadAll(tr)
					if !bytes.Equal(got, bin) || h.Mode != 0o755 {
						t.Errorf("/keso: %d bytes mode %o, want the binary (%d bytes) mode 755", len(got), h.Mode, len(bin))
					}
				}
			}
			if !found {
				t.Error("layer has no /keso")
			}
			// The layer is plain tar: the binary's bytes are in the
			// tarball as they are, so a rebuilt keso changes only what
			// changed in it (the upgrade delta relies on this).
			if whole, _ := os.ReadFile(p); !bytes.Contains(whole, bin) {
				t.Error("the tarball does not hold the keso binary as it is (a compressed layer?)")
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	bin := []byte("keso binary")
	var a, b bytes.Buffer
	if err := Write(&a, bin, Options{Refs: []string{"keso:1"}, Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, bin, Options{Refs: []string{"keso:1"}, Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same input differ")
	}
}

func TestErrors(t *testing.T) {
	if err := Write(io.Discard, nil, Options{Refs: []string{"keso:1"}, Arch: "amd64"}); err == nil {
		t.Error("empty binary accepted")
	}
	if err := Write(io.Discard, []byte("x"), Options{Refs: []string{"keso:1"}, Arch: "mips"}); err == nil {
		t.Error("arch mips accepted")
	}
	if err := Write(io.Discard, []byte("x"), Options{Refs: []string{"Not A Ref"}, Arch: "amd64"}); err == nil {
		t.Error("bad reference accepted")
	}
}
