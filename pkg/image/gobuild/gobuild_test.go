package gobuild

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
)

// TestBinaryCrossStatic cross-compiles a real command for arm64 and checks
// it is a static AArch64 executable carrying the version, and that two
// builds are identical (-trimpath, no build id).
func TestBinaryCrossStatic(t *testing.T) {
	dir := t.TempDir()
	var outs [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "keso-build"+string(rune('a'+i)))
		if err := Binary(context.Background(), "../../..", "./cmd/keso-build", out, Target{GOARCH: "arm64"}, "7.7.7-test"); err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("machine = %v, want EM_AARCH64", f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has an ELF interpreter: not static")
			}
		}
		f.Close()
		b, _ := os.ReadFile(out)
		if !bytes.Contains(b, []byte("7.7.7-test")) {
			t.Error("version string not linked in (-X " + VersionVar + ")")
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two builds of the same source differ")
	}
}
