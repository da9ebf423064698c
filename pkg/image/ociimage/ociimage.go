// Package ociimage writes keso's operator image: a single-layer image that
// holds the static `keso` binary at /keso, as a `docker save`-format
// tarball that k3s imports from its air-gap folder
// (/var/lib/rancher/k3s/agent/images/) at start, so no registry is needed.
// The same image runs the operator Deployment (`keso operator`) and the
// upgrade Jobs (`keso upgrade`). The output is reproducible: fixed file
// times, a fixed creation time, no host data.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// LocalRef is the tag the shipped manifests use (imagePullPolicy: Never).
const LocalRef = "docker.io/keso-os/keso:local"

// Options describe the image.
type Options struct {
	// Refs are the references the tarball carries, e.g.
	// "docker.io/keso-os/keso:1.1.0". LocalRef is always added: the
	// operator's Deployment and upgrade Jobs use it with imagePullPolicy
	// Never, so each node runs the keso of the OS it booted.
	Refs []string
	// Arch is the Go architecture of the binary: amd64, arm64 or arm
	// (arm means ARMv7, variant v7).
	Arch string
	// Created is the image's creation time (zero: the Unix epoch), so
	// builds are reproducible.
	Created time.Time
}

// Image builds the image in memory from the keso binary's bytes.
func Image(keso []byte, o Options) (v1.Image, error) {
	if len(keso) == 0 {
		return nil, fmt.Errorf("build operator image: the keso binary is empty")
	}
	variant := ""
	switch o.Arch {
	case "amd64", "arm64":
	case "arm":
		variant = "v7"
	default:
		return nil, fmt.Errorf("build operator image: arch %q: want amd64, arm64 or arm", o.Arch)
	}
	layerTar, err := rootTar(keso)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("build operator image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("build operator image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	cf.Created = v1.Time{Time: created.UTC()}
	cf.OS, cf.Architecture, cf.Variant = "linux", o.Arch, variant
	cf.Config.Entrypoint = []string{"/keso"}
	cf.Config.Cmd = []string{"operator"}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "keso", "org.opencontainers.image.description": "keso operator and upgrade tool"}
	cf.History = []v1.History{{Created: cf.Created, CreatedBy: "keso-build: static keso binary at /keso"}}
	return mutate.ConfigFile(img, cf)
}

// rootTar is the single layer: /keso (0755, root) and an empty /tmp.
func rootTar(keso []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	hdrs := []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 01777, ModTime: epoch, Format: tar.FormatPAX},
		{Name: "keso", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(keso)), ModTime: epoch, Format: tar.FormatPAX},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(keso); err != nil {
				return nil, fmt.Errorf("write layer entry %s: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes the image as a tarball k3s can import (`docker save`
// format: the config, the layers, and manifest.json). It writes the tarball
// itself rather than with tarball.MultiRefWrite, whose tag order follows
// Go's map iteration and so is not reproducible with more than one tag:
// here the tags are sorted and every entry has fixed metadata.
func Write(w io.Writer, keso []byte, o Options) error {
	img, err := Image(keso, o)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var tags []string
	for _, r := range append(append([]string(nil), o.Refs...), LocalRef) {
		ref, err := name.NewTag(r)
		if err != nil {
			return fmt.Errorf("operator image reference %q: %w (want e.g. docker.io/keso-os/keso:1.1.0)", r, err)
		}
		if !seen[ref.String()] {
			seen[ref.String()] = true
			tags = append(tags, ref.String())
		}
	}
	sort.Strings(tags)
	cfgName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	tw := tar.NewWriter(w)
	entry := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := entry(cfgName.String(), int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	var files []string
	// Layers go in as plain tar (as `docker save` wrote them before
	// Docker 25; containerd's import detects either): a gzip of the keso
	// binary would change as a whole with each build, and the root's
	// upgrade delta would carry all of it (docs/upgrade.md "Deltas").
	for _, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			return fmt.Errorf("write operator image tarball: %w", err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("write operator image tarball: %w", err)
		}
		layer, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("write operator image tarball: %w", err)
		}
		file := d.Hex + ".tar"
		if err := entry(file, int64(len(layer)), bytes.NewReader(layer)); err != nil {
			return fmt.Errorf("write operator image tarball: %w", err)
		}
		files = append(files, file)
	}
	m, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: cfgName.String(), RepoTags: tags, Layers: files}})
	if err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	if err := entry("manifest.json", int64(len(m)), bytes.NewReader(m)); err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write operator image tarball: %w", err)
	}
	return nil
}

// WriteFile writes the tarball to path (temp file, fsync, rename), e.g.
// <root>/var/lib/rancher/k3s/agent/images/keso-operator-<arch>.tar.
func WriteFile(path string, keso []byte, o Options) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".keso-image-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := Write(f, keso, o); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return nil
}
