package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModuleRoot is the keso checkout the test runs in (go env GOMOD's folder).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// CloudKernelDeb returns Debian's cloud-amd64 kernel package for tests that
// boot their own binary as PID 1, fetched with the builder's
// scripts/fetch-inputs.sh into $KESO_DEBS (default /var/cache/keso/debs)
// when it is not there yet.
func CloudKernelDeb(t testing.TB, root string) string {
	t.Helper()
	dir := os.Getenv("KESO_DEBS")
	if dir == "" {
		dir = "/var/cache/keso/debs"
	}
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, "linux-image-*-cloud-amd64_*_amd64.deb"))
		for _, p := range m {
			if !strings.HasPrefix(filepath.Base(p), "linux-image-cloud-amd64_") {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	cmd := exec.Command(filepath.Join(root, "scripts/fetch-inputs.sh"), "amd64")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/fetch-inputs.sh amd64: %v\n%s", err, out)
	}
	if p := find(); p != "" {
		return p
	}
	t.Fatalf("no linux-image-*-cloud-amd64 package in %s after scripts/fetch-inputs.sh", dir)
	return ""
}
