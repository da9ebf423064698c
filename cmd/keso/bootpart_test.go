package main

import (
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

func TestPiDiskID(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		id      string
		pi      bool
	}{
		{"console=tty1 panic=10 keso.mbr=5eed1234 keso.slot=a", "5eed1234", true},
		{"console=ttyS0 keso.slot=a", "", false},
		{"keso.mbr= keso.slot=a", "", false},
	} {
		root := host.FS{Root: t.TempDir()}
		if err := root.WriteFileAtomic("/proc/cmdline", []byte(tc.cmdline+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		id, pi := piDiskID(root)
		if id != tc.id || pi != tc.pi {
			t.Errorf("piDiskID(%q) = %q, %v; want %q, %v", tc.cmdline, id, pi, tc.id, tc.pi)
		}
	}
	if _, pi := piDiskID(host.FS{Root: t.TempDir()}); pi {
		t.Errorf("piDiskID without /proc/cmdline says Pi")
	}
}
