package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/sign"
)

// squashfsImage makes a small upgrade image of version with mksquashfs.
func squashfsImage(t *testing.T, dir, version, payload string) string {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("SKIPPED: mksquashfs not installed (apt-get install squashfs-tools; scripts/deps.sh installs it)")
	}
	root := filepath.Join(dir, "root-"+version)
	for p, c := range map[string]string{
		"etc/os-release": fmt.Sprintf("ID=keso\nVERSION_ID=%s\n", version),
		"boot/vmlinuz":   "kernel", "boot/initrd": "initrd", "usr/bin/payload": payload,
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	img := filepath.Join(dir, "keso-"+version+"-amd64.squashfs")
	if b, err := exec.Command("mksquashfs", root, img, "-noappend", "-quiet", "-all-root", "-noI", "-noD", "-noF", "-noX").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}
	return img
}

func TestDeltaCommand(t *testing.T) {
	dir := t.TempDir()
	payload := string(bytes.Repeat([]byte("0123456789abcdef"), 1<<16))
	old := squashfsImage(t, dir, "1.0.0", payload)
	img := squashfsImage(t, dir, "1.1.0", payload+"one more line\n")
	key := filepath.Join(dir, "release.key")
	if got := run([]string{"keygen", "--out", key}); got != 0 {
		t.Fatalf("keygen: exit %d", got)
	}
	if got := run([]string{"delta", "--from", old, "--to", img}); got != 1 {
		t.Errorf("delta without a key: exit %d, want 1", got)
	}
	if got := run([]string{"delta", "--from", old, "--to", img, "--sign-key", old}); got != 1 {
		t.Errorf("delta with an image as the key: exit %d, want 1", got)
	}
	if _, err := os.Stat(delta.PathsFor(img, "1.0.0").Data); err == nil {
		t.Errorf("delta with a bad key wrote its data file")
	}
	if got := run([]string{"delta-size", "--to", img, "--from", filepath.Join(dir, "missing")}); got != 1 {
		t.Errorf("delta-size of a missing image: exit %d, want 1", got)
	}
	if got := run([]string{"delta", "--from", old, "--to", img, "--sign-key", key}); got != 0 {
		t.Fatalf("delta: exit %d", got)
	}
	p := delta.PathsFor(img, "1.0.0")
	index, err := os.ReadFile(p.Index)
	if err != nil {
		t.Fatal(err)
	}
	pubText, _ := os.ReadFile(key + ".pub")
	pub, err := sign.ParsePublic(string(bytes.TrimSpace(pubText)))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(p.Sig)
	if _, err := sign.VerifyDeltaIndex(sig, sha256.Sum256(index), []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("index signature: %v", err)
	}
	ix, err := delta.Parse(index)
	if err != nil {
		t.Fatal(err)
	}
	if ix.FromVersion != "1.0.0" || ix.Version != "1.1.0" {
		t.Errorf("index versions %q -> %q, want 1.0.0 -> 1.1.0", ix.FromVersion, ix.Version)
	}
	// Applied as a node would, it gives the new image.
	ob, _ := os.ReadFile(old)
	nb, _ := os.ReadFile(img)
	data, _ := os.ReadFile(p.Data)
	dst := &memTarget{make([]byte, len(nb))}
	if err := delta.Check(ix, bytes.NewReader(ob), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Apply(ix, bytes.NewReader(ob), bytes.NewReader(data), dst, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.b, nb) {
		t.Error("the applied delta is not the new image")
	}
	if got, full := int64(len(index))+ix.Data.Size, int64(len(nb)); got*10 > full {
		t.Errorf("the delta is %d bytes for a one-line change of a %d-byte image", got, full)
	}
	// Without --from: the delta from nothing.
	if got := run([]string{"delta", "--to", img, "--sign-key", key}); got != 0 {
		t.Fatalf("delta from nothing: exit %d", got)
	}
	if _, err := os.Stat(delta.PathsFor(img, "").Data); err != nil {
		t.Errorf("delta from nothing: %v", err)
	}
}

type memTarget struct{ b []byte }

func (m *memTarget) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.b[off:]), nil }
func (m *memTarget) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
