package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/sign"
)

// publishDelta makes the delta from the image old (of fromVersion) to
// the image img (of version) as keso-build delta does, signed with the
// test release key; serves img with it under dir/; and returns img's URL,
// the data file's URL path and the index and data sizes.
func (s *releaseServer) publishDelta(t testing.TB, dir, old, img, fromVersion, version string) (url, dataPath string, indexBytes, dataBytes int64) {
	t.Helper()
	ob, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	ix, err := delta.Make(ob, nb, &data, delta.Options{})
	if err != nil {
		t.Fatalf("make delta %s -> %s: %v", old, img, err)
	}
	ix.FromVersion, ix.Version = fromVersion, version
	keyFile, _, err := testReleaseKey()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sign.ParsePrivate(kb)
	if err != nil {
		t.Fatal(err)
	}
	index, sig, err := ix.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	local := delta.PathsFor(filepath.Join(t.TempDir(), filepath.Base(img)), fromVersion)
	os.MkdirAll(filepath.Dir(local.Index), 0o755)
	for f, b := range map[string][]byte{local.Index: index, local.Sig: sig, local.Data: data.Bytes()} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	url = s.publish(dir, img)
	remote := delta.PathsFor(strings.TrimPrefix(url, s.GuestURL), fromVersion)
	s.mu.Lock()
	s.files[remote.Index], s.files[remote.Sig], s.files[remote.Data] = local.Index, local.Sig, local.Data
	s.mu.Unlock()
	return url, remote.Data, int64(len(index)), int64(data.Len())
}
