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

// TestMakeUncompressed: with Compression none a file's bytes are in the
// image as they are (what upgrade deltas rely on), and unsquashfs reads
// the image back.
func TestMakeUncompressed(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	if got := strings.Join(Args("s", "o", Options{Compression: "none"}), " "); strings.Contains(got, "-comp") || !strings.Contains(got, "-noD") {
		t.Errorf("none args = %q", got)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	content := []byte(strings.Repeat("keso keeps a file's bytes as they are. ", 20000))
	os.WriteFile(filepath.Join(src, "f"), content, 0o644)
	out := filepath.Join(dir, "o.sqfs")
	if err := Make(t.Context(), src, out, Options{Epoch: 1700000000, Compression: "none"}); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(img), string(content)) {
		t.Errorf("the %d-byte file is not stored as it is in the %d-byte image", len(content), len(img))
	}
	back := filepath.Join(dir, "back")
	if b, err := exec.Command("unsquashfs", "-d", back, out).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, b)
	}
	if got, _ := os.ReadFile(filepath.Join(back, "f")); string(got) != string(content) {
		t.Errorf("unsquashfs read back %d bytes, want the %d written", len(got), len(content))
	}
}
