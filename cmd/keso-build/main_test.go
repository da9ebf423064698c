package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRunUsageAndErrors(t *testing.T) {
	if got := run(nil); got != 2 {
		t.Errorf("no profile: exit %d, want 2", got)
	}
	if got := run([]string{"--no-such-flag"}); got != 2 {
		t.Errorf("bad flag: exit %d, want 2", got)
	}
	if got := run([]string{"--quiet", "--repo", "../..", "--out", t.TempDir(), "sparc"}); got != 1 {
		t.Errorf("unknown profile: exit %d, want 1", got)
	}
	// the flags exist (an unknown flag is exit 2, before the profile's 1)
	if got := run([]string{"--quiet", "--repo", "../..", "--out", t.TempDir(), "--extra", "a", "--extra", "b", "--test-fixture", "sparc"}); got != 1 {
		t.Errorf("--extra, --test-fixture: exit %d, want 1 (unknown profile)", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("arch: amd64\nbogus: 1\n"), 0o644)
	if got := run([]string{"--quiet", "--out", t.TempDir(), bad}); got != 1 {
		t.Errorf("invalid profile: exit %d, want 1", got)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if got := run([]string{"--quiet", "--repo", "../..", "amd64"}); got != 2 {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d, want 2", got)
	}
}

func TestKeygen(t *testing.T) {
	key := filepath.Join(t.TempDir(), "release.key")
	if got := run([]string{"keygen", "--out", key}); got != 0 {
		t.Fatalf("keygen: exit %d", got)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	if _, err := os.Stat(key + ".pub"); err != nil {
		t.Errorf("public key: %v", err)
	}
	if got := run([]string{"keygen", "--out", key}); got != 1 {
		t.Errorf("keygen over an existing key: exit %d, want 1 (refuse)", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if got := run([]string{"--quiet", "--repo", "../..", "--sign-key", bad, "amd64"}); got != 1 {
		t.Errorf("bad signing key: exit %d, want 1", got)
	}
}
