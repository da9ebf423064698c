package build

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/image/tree"
)

// TestBusyboxAppletsExist: every tool linked to busybox is an applet of
// Debian's busybox-static (the host's, the same package the images ship).
func TestBusyboxAppletsExist(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("SKIP (loud): busybox missing; scripts/deps.sh installs busybox-static")
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	have := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		have[a] = true
	}
	for _, a := range BusyboxApplets {
		if !have[a] {
			t.Errorf("%s is not an applet of %s", a, bb)
		}
	}
	for _, keso := range []string{"mount", "umount", "ip", "modprobe", "insmod", "dmesg", "reboot", "poweroff", "init", "switch_root"} {
		for _, a := range BusyboxApplets {
			if a == keso {
				t.Errorf("%s is linked to busybox, shadowing keso's own", a)
			}
		}
	}
}

// TestAddAdminRunsSudo adds the admin userland from Debian's real amd64
// packages (scripts/fetch-inputs.sh puts them in /var/cache/keso/debs),
// stages the tree and runs it: in a chroot, rancher's `sudo -n id -u`
// prints 0 (and nothing else) through the shipped sudo, its plugin, PAM modules and
// libraries; bob, who is in no sudoers line, is refused; bash and
// busybox's tools run with the flags scripts use.
func TestAddAdminRunsSudo(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP (loud): chroot and setuid need root (CI runs as root)")
	}
	need(t, "dpkg-deb", "chroot")
	debs := os.Getenv("KESO_DEBS")
	if debs == "" {
		debs = "/var/cache/keso/debs"
	}
	if m, _ := filepath.Glob(filepath.Join(debs, "sudo_*_amd64.deb")); len(m) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no sudo amd64 package in %s: scripts/fetch-inputs.sh fetches it", debs)
		}
		t.Skipf("SKIP (loud): no sudo amd64 package in %s; run scripts/fetch-inputs.sh amd64", debs)
	}
	prof := &profile.Profile{Name: "t", Arch: "amd64", Admin: &profile.Admin{
		Bash: profile.Input{Package: "bash-static"}, Busybox: profile.Input{Package: "busybox-static"}, Sudo: profile.Input{Package: "sudo"},
		Libraries: []string{"libc6", "libpam0g", "libpam-modules", "libaudit1", "libcap-ng0", "libselinux1", "libpcre2-8-0", "zlib1g", "libcrypt1"},
	}}
	b := &builder{opts: Options{CacheDir: t.TempDir(), DebDirs: []string{debs}}, prof: prof}
	tr := tree.Tree{}
	tr.Data("usr/bin/keso", 0o755, []byte("keso"))
	desc, err := b.addAdmin(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("admin: %s", desc)
	if n := tr[SudoPath]; n == nil || n.Mode&fs.ModeSetuid == 0 {
		t.Fatalf("%s: %+v, want a setuid file", SudoPath, n)
	}
	if got := tr["usr/bin/keso"]; got.Kind != tree.File {
		t.Errorf("usr/bin/keso was replaced by a busybox link")
	}
	if got := tr["usr/bin/grep"]; got == nil || got.Target != "../../bin/busybox" {
		t.Errorf("usr/bin/grep = %+v, want a link to ../../bin/busybox", got)
	}
	if got := tr["etc/sudoers"]; got == nil || got.Mode != 0o440 {
		t.Errorf("etc/sudoers = %+v, want mode 0440", got)
	}
	tr.Data("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nrancher:x:1000:1000:rancher:/home/rancher:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n"))
	tr.Data("etc/group", 0o644, []byte("root:x:0:\nrancher:x:1000:\nbob:x:1001:\n"))
	tr.Data("etc/shadow", 0o600, []byte("root:*::0:99999:7:::\nrancher:*::0:99999:7:::\nbob:!::0:99999:7:::\n"))
	hn, _ := os.Hostname()
	tr.Data("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n127.0.1.1 "+hn+"\n")) // as sysconf.Hostname writes it
	tr.Dir("tmp", 0o1777|fs.ModeSticky)
	tr.Dir("run", 0o755)
	tr.Dir("dev", 0o755)
	root := filepath.Join(t.TempDir(), "root")
	if err := tr.WriteDir(root, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(root), 0o755)
	devnull := filepath.Join(root, "dev/null")
	if err := exec.Command("mknod", "-m", "0666", devnull, "c", "1", "3").Run(); err != nil {
		t.Fatalf("mknod %s: %v", devnull, err)
	}
	run := func(user, cmd string) (string, error) {
		out, err := exec.Command("chroot", "--userspec="+user, root, "/bin/bash", "-c", "PATH=/usr/bin:/bin; "+cmd).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run("1000:1000", "sudo -n id -u"); err != nil || out != "0" {
		t.Errorf("rancher: sudo -n id -u: %q, %v; want 0", out, err)
	}
	if out, err := run("1001:1001", "sudo -n id -u"); err == nil || out == "0" {
		t.Errorf("bob: sudo -n id -u: %q, %v; want refused", out, err)
	}
	if out, err := run("1000:1000", `printf 'a1\nb2\nc3\nd4\n' | grep -E '^[ab][0-9]$' | head -1; env | grep -c ^PATH=; seq 5 | tail -n +4 | xargs`); err != nil || out != "a1\n1\n4 5" {
		t.Errorf("busybox tools under bash: %q, %v; want a1, 1, 4 5", out, err)
	}
}
