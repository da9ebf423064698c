package main

import (
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

func TestLocate(t *testing.T) {
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
		loc := locate(root)
		if got, want := loc.MBRDisk, tc.id; got != want || loc.UBoot() != tc.pi {
			t.Errorf("locate(%q) = %+v (U-Boot %v); want disk %q (U-Boot %v)", tc.cmdline, loc, loc.UBoot(), want, tc.pi)
		}
	}
	if locate(host.FS{Root: t.TempDir()}).UBoot() {
		t.Errorf("locate without /proc/cmdline says Pi")
	}
}
