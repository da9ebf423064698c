package squashfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	got := strings.Join(Args("src", "out.sqfs", Options{Epoch: 1700000000}), " ")
	for _, want := range []string{"src out.sqfs -noappend", "-all-root", "-no-xattrs", "-mkfs-time 1700000000",
		"-all-time 1700000000", "-comp zstd", "-Xcompression-level 3", "-no-progress"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if got := strings.Join(Args("s", "o", Options{Compression: "xz"}), " "); !strings.Contains(got, "-comp xz") || strings.Contains(got, "compression-level") {
		t.Errorf("xz args = %q", got)
	}
}

// TestMakeIgnoresSourceDateEpochEnv: mksquashfs refuses SOURCE_DATE_EPOCH
// together with -mkfs-time, and go-diskfs needs it set in the same process.
func TestMakeIgnoresSourceDateEpochEnv(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	out := filepath.Join(dir, "o.sqfs")
	if err := Make(t.Context(), src, out, Options{Epoch: 1700000000}); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command("unsquashfs", "-s", out).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "Tue Nov 14 22:13:20 2023") {
		t.Errorf("unsquashfs -s: %v\n%s", err, b)
	}
}
