package sharedlib

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestTriplet(t *testing.T) {
	for _, tc := range []struct{ arch, want string }{
		{"amd64", "x86_64-linux-gnu"}, {"arm64", "aarch64-linux-gnu"}, {"armhf", "arm-linux-gnueabihf"}, {"mips", ""},
	} {
		got, err := Triplet(tc.arch)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("Triplet(%q) = %q, %v; want %q", tc.arch, got, err, tc.want)
		}
	}
}

// hostTrue is Debian's /usr/bin/true on amd64: dynamically linked against
// libc.so.6 only, interpreter /lib64/ld-linux-x86-64.so.2.
func hostTrue(t *testing.T) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("SKIP: the fixture is the amd64 host's /usr/bin/true; this host is %s", runtime.GOARCH)
	}
	for _, f := range []string{"/usr/bin/true", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("SKIP: needs a Debian amd64 host with %s (coreutils, libc6): %v", f, err)
		}
	}
	return "/usr/bin/true"
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// A package tree laid out like Debian's libc6: the real files in
// usr/lib/<triplet>, an absolute symlink from lib/<triplet> (taken
// relative to the tree, not the host), the loader in lib/<triplet>.
func TestClosureFollowsNeededAndInterp(t *testing.T) {
	prog := hostTrue(t)
	const tr = "x86_64-linux-gnu"
	tree := t.TempDir()
	copyFile(t, "/lib/"+tr+"/libc.so.6", filepath.Join(tree, "usr/lib", tr, "libc.so.6"))
	if err := os.MkdirAll(filepath.Join(tree, "lib", tr), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/"+tr+"/libc.so.6", filepath.Join(tree, "lib", tr, "libc.so.6")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "/lib/"+tr+"/ld-linux-x86-64.so.2", filepath.Join(tree, "lib", tr, "ld-linux-x86-64.so.2"))
	empty := t.TempDir() // a second tree is searched too, in order

	got, err := Closure(prog, []string{empty, tree}, tr)
	if err != nil {
		t.Fatal(err)
	}
	if want := "lib64/ld-linux-x86-64.so.2"; got.Interp != want {
		t.Errorf("Interp = %q, want %q", got.Interp, want)
	}
	want := []File{
		{Dest: "lib/" + tr + "/ld-linux-x86-64.so.2", Source: filepath.Join(tree, "lib", tr, "ld-linux-x86-64.so.2"), NeededBy: "libc.so.6"},
		{Dest: "lib/" + tr + "/libc.so.6", Source: filepath.Join(tree, "usr/lib", tr, "libc.so.6"), NeededBy: "true"},
	}
	if len(got.Libs) != len(want) {
		t.Fatalf("Libs = %+v, want %+v", got.Libs, want)
	}
	for i := range want {
		if got.Libs[i] != want[i] {
			t.Errorf("Libs[%d] = %+v, want %+v", i, got.Libs[i], want[i])
		}
	}
}

func TestClosureNamesTheMissingLibrary(t *testing.T) {
	prog := hostTrue(t)
	_, err := Closure(prog, []string{t.TempDir()}, "x86_64-linux-gnu")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"true needs libc.so.6", "add the Debian package"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestClosureStaticProgram(t *testing.T) {
	// A Go test binary built with CGO_ENABLED=0 is static: no interpreter,
	// no libraries. (With cgo it is dynamic; then the check is skipped.)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	interp, err := interpreter(exe)
	if err != nil {
		t.Fatal(err)
	}
	if interp != "" {
		t.Skipf("SKIP: the test binary is dynamically linked (%s); the static case needs CGO_ENABLED=0", interp)
	}
	got, err := Closure(exe, nil, "x86_64-linux-gnu")
	if err != nil || got.Interp != "" || len(got.Libs) != 0 {
		t.Errorf("Closure(static) = %+v, %v; want nothing", got, err)
	}
}

// TestClosureFollowsRunpath: a library found only in the DT_RUNPATH folder
// of the object that needs it (as sudo finds libsudo_util.so.0 in
// /usr/libexec/sudo) is found there, and Closures merges a program with a
// plugin it loads, each library once.
func TestClosureFollowsRunpath(t *testing.T) {
	hostTrue(t)
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("SKIP (loud): gcc missing; scripts/deps.sh installs it")
	}
	const tr = "x86_64-linux-gnu"
	tree := t.TempDir()
	src := filepath.Join(t.TempDir(), "x.c")
	os.WriteFile(src, []byte("int helper(void) { return 0; }\n"), 0o644)
	priv := filepath.Join(tree, "usr/libexec/tool")
	os.MkdirAll(priv, 0o755)
	build := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	build("-shared", "-fPIC", "-o", filepath.Join(priv, "libhelper.so.0"), "-Wl,-soname,libhelper.so.0", src)
	main := filepath.Join(t.TempDir(), "m.c")
	os.WriteFile(main, []byte("int helper(void); int main(void) { return helper(); }\n"), 0o644)
	prog := filepath.Join(tree, "usr/bin/tool")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	build("-o", prog, main, "-L"+priv, "-l:libhelper.so.0", "-Wl,--enable-new-dtags,-rpath,/usr/libexec/tool")
	plugin := filepath.Join(priv, "plugin.so")
	build("-shared", "-fPIC", "-o", plugin, main, "-L"+priv, "-l:libhelper.so.0", "-Wl,--enable-new-dtags,-rpath,/usr/libexec/tool")
	copyFile(t, "/lib/"+tr+"/libc.so.6", filepath.Join(tree, "lib", tr, "libc.so.6"))
	copyFile(t, "/lib/"+tr+"/ld-linux-x86-64.so.2", filepath.Join(tree, "lib", tr, "ld-linux-x86-64.so.2"))

	got, err := Closures([]string{prog, plugin}, []string{tree}, tr)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, l := range got.Libs {
		dests = append(dests, l.Dest)
	}
	want := []string{"lib/" + tr + "/ld-linux-x86-64.so.2", "lib/" + tr + "/libc.so.6", "usr/libexec/tool/libhelper.so.0"}
	if strings.Join(dests, " ") != strings.Join(want, " ") {
		t.Errorf("Closures = %v, want %v", dests, want)
	}
	if got.Interp != "lib64/ld-linux-x86-64.so.2" {
		t.Errorf("Interp = %q, want the program's", got.Interp)
	}
	// Without the RUNPATH folder in the tree, the error names who needs what.
	os.Remove(filepath.Join(priv, "libhelper.so.0"))
	if _, err := Closure(prog, []string{tree}, tr); err == nil || !strings.Contains(err.Error(), "tool needs libhelper.so.0") {
		t.Errorf("Closure without libhelper: %v, want an error naming tool and libhelper.so.0", err)
	}
}
