package deb

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildDeb makes a real package with dpkg-deb (an independent writer).
func buildDeb(t *testing.T, comp string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb (package dpkg) not installed: cannot build a test .deb")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "pkg")
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: kesotest\nVersion: 1:2.0-3\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test\n multi line\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.WriteFile(filepath.Join(root, "boot", "vmlinuz-6.1.0-1-test"), []byte("kernel"), 0o644)
	os.MkdirAll(filepath.Join(root, "usr", "lib", "x"), 0o755)
	os.WriteFile(filepath.Join(root, "usr", "lib", "x", "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("tool", filepath.Join(root, "usr", "lib", "x", "link"))
	out := filepath.Join(dir, "kesotest.deb")
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+comp, "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	return out
}

func TestExtractAndControl(t *testing.T) {
	for _, comp := range []string{"xz", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			d := buildDeb(t, comp)
			ctl, err := Control(d)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ctl["Version"], "1:2.0-3"; got != want {
				t.Errorf("Version = %q, want %q", got, want)
			}
			if got, want := ctl["Description"], "test\nmulti line"; got != want {
				t.Errorf("Description = %q, want %q", got, want)
			}
			dest := t.TempDir()
			if err := Extract(d, dest, nil); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dest, "boot", "vmlinuz-6.1.0-1-test"))
			if err != nil || string(b) != "kernel" {
				t.Errorf("vmlinuz = %q, %v; want \"kernel\"", b, err)
			}
			fi, err := os.Stat(filepath.Join(dest, "usr", "lib", "x", "tool"))
			if err != nil || fi.Mode().Perm()&0o111 == 0 {
				t.Errorf("tool mode = %v, %v; want executable", fi, err)
			}
			if l, err := os.Readlink(filepath.Join(dest, "usr", "lib", "x", "link")); err != nil || l != "tool" {
				t.Errorf("link = %q, %v; want tool", l, err)
			}
			only := t.TempDir()
			if err := Extract(d, only, func(n string) bool { return n == "boot/vmlinuz-6.1.0-1-test" }); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(only, "usr")); !os.IsNotExist(err) {
				t.Errorf("filtered extract wrote usr/: %v", err)
			}
		})
	}
}

func TestNotADeb(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.deb")
	os.WriteFile(p, []byte("hello"), 0o644)
	if err := Extract(p, t.TempDir(), nil); err == nil {
		t.Error("want an error for a non-ar file")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1.176-1", "6.1.172-1", 1},
		{"6.1.9-1", "6.1.10-1", -1},
		{"1.0~rc1-1", "1.0-1", -1},
		{"1:1.0", "2.0", 1},
		{"252.39-1~deb12u2", "252.39-1~deb12u1", 1},
		{"2.0", "2.0", 0},
		{"1.0a", "1.0", 1},
	} {
		got := CompareVersions(tc.a, tc.b)
		if (got > 0) != (tc.want > 0) || (got < 0) != (tc.want < 0) {
			t.Errorf("CompareVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}
