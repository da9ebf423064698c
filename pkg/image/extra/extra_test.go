package extra

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/image/tree"
	"github.com/keso-os/keso/pkg/initrd"
)

// image is a small root like keso's build makes (the paths the rules are
// about).
func image(t *testing.T) tree.Tree {
	t.Helper()
	src := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(src, []byte("keso"), 0o755)
	img := tree.Tree{}
	for _, d := range []string{"proc", "sys", "dev", "run", "var", "keso/state", "home", "opt", "mnt", "usr/share/keso", "etc/keso", "usr/local/bin", "usr/sbin", "usr/bin"} {
		img.Dir(d, 0o755)
	}
	img.Dir("tmp", 0o777|fs.ModeSticky)
	img.Dir("root", 0o700)
	img.Copy("usr/sbin/keso-init", 0o755, src)
	img.Symlink("sbin/init", "../usr/sbin/keso-init")
	img.Copy("usr/bin/keso", 0o755, src)
	img.Copy("usr/local/bin/k3s", 0o755, src)
	img.Symlink("bin/sh", "gosh")
	img.Data("etc/os-release", 0o644, []byte("NAME=keso\n"))
	img.Symlink("usr/lib/os-release", "../../etc/os-release")
	img.Data("lib/modules/6.1/modules.dep", 0o644, []byte{})
	img.Data("boot/vmlinuz", 0o644, []byte("k"))
	img.Data("usr/share/keso/install/arch", 0o644, []byte("amd64\n"))
	img.Data("usr/share/keso/keys/release.pub", 0o644, []byte("key\n"))
	return img
}

// host writes files below a new temp folder: "d/" is a directory, "l@target"
// a symlink, anything else a file with the given mode.
func host(t *testing.T, entries map[string]fs.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		mode := entries[k]
		switch {
		case strings.HasSuffix(k, "/"):
			p := filepath.Join(dir, k)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		case strings.Contains(k, "@"):
			name, target, _ := strings.Cut(k, "@")
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		default:
			p := filepath.Join(dir, k)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte("content of "+k), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestAddWritesFilesModesAndSymlinks adds two extra trees to an image, writes
// the root and checks every added entry on disk.
func TestAddWritesFilesModesAndSymlinks(t *testing.T) {
	img := image(t)
	a := host(t, map[string]fs.FileMode{
		"usr/local/bin/kubelet":              0o755,
		"usr/local/bin/setuid-helper":        fs.ModeSetuid | 0o755,
		"usr/libexec/cni/":                   0o750,
		"usr/libexec/cni/bridge":             0o755,
		"etc/rancher/k3s/registries.yaml":    0o600,
		"usr/share/keso/images/pause.tar":    0o644,
		"usr/local/bin/crictl@/usr/bin/keso": 0,
		"usr/lib/escape@../../../../..":      0, // a link pointing out is kept as a link
	})
	b := host(t, map[string]fs.FileMode{
		"usr/local/bin/containerd": 0o755,
		"etc/keso/":                0o700, // exists in the image: merged, the image's mode stays
		"etc/keso/note":            0o644,
	})
	sums, err := Add(img, []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].Dir != a || sums[1].Dir != b || sums[1].Entries != 7 {
		t.Errorf("summaries = %+v", sums)
	}
	root := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	if err := img.WriteDir(root, epoch); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		"usr/local/bin/kubelet":           0o755,
		"usr/local/bin/setuid-helper":     0o755 | fs.ModeSetuid,
		"usr/libexec/cni":                 fs.ModeDir | 0o750,
		"usr/libexec/cni/bridge":          0o755,
		"etc/rancher/k3s/registries.yaml": 0o600,
		"etc/rancher":                     fs.ModeDir | 0o755,
		"usr/share/keso/images/pause.tar": 0o644,
		"usr/local/bin/containerd":        0o755,
		"etc/keso":                        fs.ModeDir | 0o755,
		"etc/keso/note":                   0o644,
		"usr/local/bin/k3s":               0o755,
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := fi.Mode(); got != want {
			t.Errorf("%s mode = %v, want %v", p, got, want)
		}
		if !fi.ModTime().Equal(epoch) {
			t.Errorf("%s mtime = %v, want %v", p, fi.ModTime(), epoch)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "usr/libexec/cni/bridge"))
	if want := "content of usr/libexec/cni/bridge"; err != nil || string(got) != want {
		t.Errorf("bridge = %q, %v; want %q", got, err, want)
	}
	for p, want := range map[string]string{"usr/local/bin/crictl": "/usr/bin/keso", "usr/lib/escape": "../../../../.."} {
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want -> %q", p, got, err, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "usr/bin/keso")); string(got) != "keso" {
		t.Errorf("keso's own usr/bin/keso = %q, want it untouched", got)
	}
}

// TestRefusals checks each rule refuses with the host path and the reason,
// and that a refused set changes nothing in the image.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries map[string]fs.FileMode
		bad     string // host-relative path named in the error
		want    string
	}{
		{"replace keso binary", map[string]fs.FileMode{"usr/bin/keso": 0o755}, "usr/bin/keso", "would replace a file keso's build puts there"},
		{"replace k3s", map[string]fs.FileMode{"usr/local/bin/k3s": 0o755}, "usr/local/bin/k3s", "would replace a file"},
		{"replace /sbin/init", map[string]fs.FileMode{"sbin/init": 0o755}, "sbin/init", "would replace a symlink (-> ../usr/sbin/keso-init)"},
		{"replace os-release", map[string]fs.FileMode{"etc/os-release": 0o644}, "etc/os-release", "would replace a file"},
		{"file over a directory", map[string]fs.FileMode{"usr/share/keso": 0o644}, "usr/share/keso", "would replace a directory"},
		{"symlink over a directory", map[string]fs.FileMode{"usr/local/bin@/tmp": 0}, "usr/local/bin", "would replace a directory"},
		{"through an image symlink", map[string]fs.FileMode{"usr/lib/os-release/x": 0o644}, "usr/lib/os-release", "below /usr/lib/os-release, which is a symlink"},
		{"below a file", map[string]fs.FileMode{"usr/bin/keso/x": 0o644}, "usr/bin/keso/x", "which is a file"},
		{"under /opt", map[string]fs.FileMode{"opt/cni/bin/bridge": 0o755}, "opt/cni", "/opt is mounted over at boot"},
		{"under /var", map[string]fs.FileMode{"var/lib/rancher/k3s/agent/images/pause.tar": 0o644}, "var/lib", "/var is mounted over at boot"},
		{"under /root", map[string]fs.FileMode{"root/.ssh/authorized_keys": 0o600}, "root/.ssh", "/root is mounted over at boot"},
		{"under /keso/state", map[string]fs.FileMode{"keso/state/x": 0o644}, "keso/state/x", "/keso/state is mounted over at boot"},
		{"a kernel module", map[string]fs.FileMode{"lib/modules/6.1/extra/x.ko": 0o644}, "lib/modules/6.1/extra", "/lib/modules is keso's own"},
		{"a release key", map[string]fs.FileMode{"usr/share/keso/keys/mine.pub": 0o644}, "usr/share/keso/keys/mine.pub", "--sign-key"},
		{"boot", map[string]fs.FileMode{"boot/dtb": 0o644}, "boot/dtb", "/boot is keso's own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := image(t)
			before := len(img)
			dir := host(t, tc.entries)
			_, err := Add(img, []string{dir})
			if err == nil {
				t.Fatalf("added %v, want a refusal", tc.entries)
			}
			for _, want := range []string{filepath.Join(dir, tc.bad) + ": ", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if len(img) != before {
				t.Errorf("image has %d entries after a refusal, want %d (unchanged)", len(img), before)
			}
		})
	}
}

// TestNoWriteOutsideRootThroughAnExtraSymlink: one extra tree adds a symlink
// out of the root, a later one a file below it. Written naively, the file
// would land outside the root.
func TestNoWriteOutsideRootThroughAnExtraSymlink(t *testing.T) {
	outside := t.TempDir()
	img := image(t)
	a := host(t, map[string]fs.FileMode{"usr/evil@" + outside: 0})
	b := host(t, map[string]fs.FileMode{"usr/evil/pwned": 0o644})
	_, err := Add(img, []string{a, b})
	if err == nil || !strings.Contains(err.Error(), "below /usr/evil, which is a symlink (-> "+outside+") added by "+filepath.Join(a, "usr/evil")) {
		t.Fatalf("err = %v, want a refusal naming the symlink and the tree that added it", err)
	}
	if err := img.WriteDir(t.TempDir(), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("something was written outside the root: %v", ents)
	}
}

func TestTwoExtrasMayNotReplaceEachOther(t *testing.T) {
	img := image(t)
	a := host(t, map[string]fs.FileMode{"usr/local/bin/kubelet": 0o755})
	b := host(t, map[string]fs.FileMode{"usr/local/bin/kubelet": 0o755})
	if err := os.WriteFile(filepath.Join(b, "usr/local/bin/kubelet"), []byte("another kubelet"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Add(img, []string{a, b})
	if err == nil || !strings.Contains(err.Error(), "would replace a file added by "+filepath.Join(a, "usr/local/bin/kubelet")) {
		t.Fatalf("err = %v, want a refusal naming the first tree", err)
	}
}

func TestUncleanPathsAreRefused(t *testing.T) {
	for _, p := range []string{"../etc/x", "/etc/x", "usr/../../x", "..", "usr//x"} {
		img := image(t)
		x := &Tree{Dir: "/src", Entries: tree.Tree{p: {Kind: tree.File, Mode: 0o644, Data: []byte("x")}}}
		err := Merge(img, []*Tree{x})
		if err == nil || !strings.Contains(err.Error(), "is not a clean path inside the root") {
			t.Errorf("%q: err = %v, want a refusal", p, err)
		}
	}
}

func TestScanRefusesSpecialFilesAndNonFolders(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "fifo")) || !strings.Contains(err.Error(), "only regular files, directories and symlinks") {
		t.Errorf("fifo: err = %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Scan(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: err = %v", err)
	}
	if _, err := Scan(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing: err = %v", err)
	}
}

// TestHiddenMatchesTheBootLayers keeps Hidden in step with the mounts the
// initrd stage makes over the root (pkg/initrd.LayerPlan).
func TestHiddenMatchesTheBootLayers(t *testing.T) {
	for _, state := range []string{"", "/sysroot/keso/state"} {
		for _, op := range initrd.LayerPlan("/sysroot", state, "/run/keso") {
			rel, ok := strings.CutPrefix(op.Target, "/sysroot/")
			if !ok || rel == "etc" { // /etc is an overlay: the image's files show through
				continue
			}
			if !slices.Contains(Hidden, rel) {
				t.Errorf("the initrd mounts over /%s but extra.Hidden lacks it", rel)
			}
		}
	}
}

// TestIdenticalEntriesAreAccepted: an extra file with the image's bytes and
// mode, or a symlink with the image's target, adds nothing and replaces
// nothing (the same Debian glibc in the image and in an extra tree's
// closure); the same path with other bytes, another mode or another target
// is still refused.
func TestIdenticalEntriesAreAccepted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    fs.FileMode
		target  string
		wantErr bool
	}{
		{"same bytes and mode", "libc", 0o755, "", false},
		{"other bytes", "libc, another build", 0o755, "", true},
		{"other mode", "libc", 0o644, "", true},
		{"same link", "", 0, "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", false},
		{"other link", "", 0, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", true},
	} {
		img := image(t)
		img.Data("lib/x86_64-linux-gnu/libc.so.6", 0o755, []byte("libc"))
		img.Symlink("lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
		before := len(img)
		dir := t.TempDir()
		if tc.target != "" {
			os.MkdirAll(filepath.Join(dir, "lib64"), 0o755)
			if err := os.Symlink(tc.target, filepath.Join(dir, "lib64/ld-linux-x86-64.so.2")); err != nil {
				t.Fatal(err)
			}
		} else {
			p := filepath.Join(dir, "lib/x86_64-linux-gnu/libc.so.6")
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.mode)
		}
		_, err := Add(img, []string{dir})
		if got := err != nil; got != tc.wantErr {
			t.Errorf("%s: Add error %v, want an error: %v", tc.name, err, tc.wantErr)
		}
		if len(img) != before {
			t.Errorf("%s: the image has %d entries, want %d (nothing added)", tc.name, len(img), before)
		}
		if n := img["lib/x86_64-linux-gnu/libc.so.6"]; string(n.Data) != "libc" {
			t.Errorf("%s: the image's libc was replaced", tc.name)
		}
	}
}
