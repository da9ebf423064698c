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
