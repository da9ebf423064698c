package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

func TestDevices(t *testing.T) {
	for active, want := range map[string]string{
		"tty0 ttyS0\n": "/dev/tty1 /dev/ttyS0",
		"ttyAMA0\n":    "/dev/ttyAMA0",
		"tty1 tty0\n":  "/dev/tty1",
		"\n":           "/dev/console",
		"":             "/dev/console",
	} {
		root := t.TempDir()
		if active != "" {
			p := filepath.Join(root, ActiveFile)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(active), 0o644)
		}
		if got := strings.Join(Devices(host.FS{Root: root}), " "); got != want {
			t.Errorf("active %q: Devices = %q, want %q", active, got, want)
		}
	}
}
