package host

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFormatExt4WipesOldTable formats an image that carries a GPT (primary
// at the start, backup at the end) and checks that fsck.ext4 accepts the
// result and that no partition table is left at either end.
func TestFormatExt4WipesOldTable(t *testing.T) {
	for _, tool := range []string{"sgdisk", "fsck.ext4", "dumpe2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not installed (gdisk/e2fsprogs; scripts/deps.sh installs them)", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(img)
	f.Truncate(128 << 20)
	f.Close()
	if out, err := exec.Command("sgdisk", "-n", "1:2048:+8M", "-c", "1:OLD", img).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	if err := (Linux{}).FormatExt4(img, "fresh", true); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.ext4", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.ext4 -fn: %v\n%s", err, out)
	}
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil || !strings.Contains(string(out), "Filesystem volume name:   fresh") {
		t.Errorf("dumpe2fs -h: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(img)
	if bytes.Contains(b[:8192], []byte("EFI PART")) || bytes.Contains(b[len(b)-(1<<20):], []byte("EFI PART")) {
		t.Error("a GPT header survived the forced format")
	}
	head, err := Linux{}.ReadHead(img, 2048)
	if err != nil || len(head) != 2048 || head[1080] != 0x53 || head[1081] != 0xEF {
		t.Errorf("ReadHead: %v, len %d, no ext4 magic at 1080", err, len(head))
	}
}
