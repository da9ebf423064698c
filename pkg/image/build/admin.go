package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/image/sharedlib"
	"github.com/keso-os/keso/pkg/image/tree"
)

// Where the root carries the admin userland (profile `admin:`).
const (
	BashPath    = "bin/bash"
	BusyboxPath = "bin/busybox"
	SudoPath    = "usr/bin/sudo"
	// SudoersPlugin is sudo's policy plugin, where sudo looks for it.
	SudoersPlugin = "usr/libexec/sudo/sudoers.so"
	// AppletDir holds the busybox links: it comes before /bin (keso's
	// u-root tools) in every user's PATH (sshd.DefaultPath).
	AppletDir = "usr/bin"
)

// BusyboxApplets are the tools linked to busybox in AppletDir: what admins'
// scripts call with GNU or busybox flags (grep -E, head -3, ps aux,
// #!/usr/bin/env sh). System tools keso runs itself (mount, ip, modprobe,
// …) are not among them: keso's own stay first. Every name is an applet of
// Debian's busybox-static (TestBusyboxAppletsExist checks the real one).
var BusyboxApplets = []string{
	"[", "[[", "ash", "awk", "base64", "basename", "bc", "bunzip2", "bzcat", "bzip2",
	"cat", "chgrp", "chmod", "chown", "clear", "cmp", "cp", "cut", "date", "dc",
	"df", "diff", "dirname", "dos2unix", "du", "echo", "ed", "egrep", "env", "expand",
	"expr", "false", "fgrep", "find", "fold", "free", "getopt", "grep", "groups", "gunzip",
	"gzip", "head", "hexdump", "hostname", "id", "kill", "killall", "less", "ln", "logger",
	"logname", "ls", "md5sum", "mkdir", "mktemp", "more", "mv", "nc", "netstat", "nl",
	"nproc", "nslookup", "od", "paste", "patch", "pidof", "ping", "ping6", "printf", "ps",
	"pwd", "readlink", "realpath", "reset", "rev", "rm", "rmdir", "run-parts", "sed", "seq",
	"sh", "sha1sum", "sha256sum", "sha512sum", "shuf", "sleep", "sort", "stat", "strings", "stty",
	"tac", "tail", "tar", "tee", "test", "time", "timeout", "top", "touch", "tr",
	"traceroute", "true", "truncate", "tty", "uname", "unexpand", "uniq", "unix2dos", "unxz", "unzip",
	"uptime", "vi", "watch", "wc", "wget", "which", "whoami", "xargs", "xxd", "xz",
	"xzcat", "yes", "zcat",
}

// Sudoers is /etc/sudoers: rancher may run anything as anyone without a
// password, as on k3OS; nobody else may, unless a config adds a file to
// /etc/sudoers.d (write_files, permissions 0440).
const Sudoers = `# keso: rancher is the node's admin, as on k3OS. Give others rights in a
# file of /etc/sudoers.d (cloud-config write_files, permissions "0440").
Defaults env_reset
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root    ALL=(ALL:ALL) ALL
rancher ALL=(ALL:ALL) NOPASSWD: ALL
@includedir /etc/sudoers.d
`

// PAMSudo is /etc/pam.d/sudo: Debian's common-auth, common-account and
// common-session in one file, with only the modules in PAMModules.
const PAMSudo = `# keso: sudo's PAM stack (Debian's common-* stacks, pam_unix only).
auth    [success=1 default=ignore] pam_unix.so nullok
auth    requisite pam_deny.so
auth    required  pam_permit.so
account required  pam_unix.so
session required  pam_permit.so
`

// PAMModules are the modules PAMSudo loads (libpam-modules).
var PAMModules = []string{"pam_unix.so", "pam_deny.so", "pam_permit.so"}

// NSSwitch is /etc/nsswitch.conf for the glibc programs (sudo, PAM): the
// account files, and DNS for host names.
const NSSwitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"

// addAdmin adds the profile's admin userland to the root (see
// profile.Admin) and returns a one-line description ("" with no admin
// block).
func (b *builder) addAdmin(ctx context.Context, t tree.Tree) (string, error) {
	a := b.prof.Admin
	if a == nil {
		return "", nil
	}
	debArch := b.prof.DebArch()
	triplet, err := sharedlib.Triplet(debArch)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	bashDir, bashDesc, err := b.unpackProgram(ctx, "admin.bash", a.Bash, "bin/bash-static", nil)
	if err != nil {
		return "", err
	}
	bbDir, bbDesc, err := b.unpackProgram(ctx, "admin.busybox", a.Busybox, "bin/busybox", nil)
	if err != nil {
		return "", err
	}
	// sudo with its policy plugin and its private library.
	sudoDir, sudoDesc, err := b.unpackProgram(ctx, "admin.sudo", a.Sudo, SudoPath,
		func(n string) bool { return strings.HasPrefix(n, path.Dir(SudoersPlugin)+"/") })
	if err != nil {
		return "", err
	}
	libs, err := b.libraryTrees(ctx, "admin.libraries", a.Libraries)
	if err != nil {
		return "", err
	}
	trees := append([]string{sudoDir}, libs...)
	// sudo, the sudoers policy plugin it loads, and the PAM modules
	// libpam loads for PAMSudo, each from the first tree that has it.
	objects := []string{filepath.Join(sudoDir, SudoPath), filepath.Join(sudoDir, SudoersPlugin)}
	modDir := path.Join("lib", triplet, "security")
	for _, m := range PAMModules {
		found := ""
		for _, tr := range trees {
			if p := filepath.Join(tr, modDir, m); isFile(p) {
				found = p
				break
			}
		}
		if found == "" {
			return "", fmt.Errorf("admin: PAM module %s is in none of admin.libraries (%s): add libpam-modules", path.Join(modDir, m), strings.Join(a.Libraries, ", "))
		}
		objects = append(objects, found)
		t.Copy(path.Join(modDir, m), 0o644, found)
	}
	res, err := sharedlib.Closures(objects, trees, triplet)
	if err != nil {
		return "", fmt.Errorf("admin: %w (admin.libraries in the profile lists the packages searched)", err)
	}
	if err := shipClosure(t, res); err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	t.Copy(BashPath, 0o755, filepath.Join(bashDir, "bin/bash-static"))
	t.Copy(BusyboxPath, 0o755, filepath.Join(bbDir, "bin/busybox"))
	linked := 0
	for _, ap := range BusyboxApplets {
		p := path.Join(AppletDir, ap)
		if _, taken := t[p]; !taken {
			t.Symlink(p, "../../"+BusyboxPath)
			linked++
		}
	}
	t.Copy(SudoPath, 0o755|fs.ModeSetuid, filepath.Join(sudoDir, SudoPath))
	t.Copy(SudoersPlugin, 0o644, filepath.Join(sudoDir, SudoersPlugin))
	t.Data("etc/sudoers", 0o440, []byte(Sudoers))
	t.Dir("etc/sudoers.d", 0o750)
	t.Data("etc/pam.d/sudo", 0o644, []byte(PAMSudo))
	if _, ok := t["etc/nsswitch.conf"]; !ok {
		t.Data("etc/nsswitch.conf", 0o644, []byte(NSSwitch))
	}
	return fmt.Sprintf("bash (%s), busybox (%s, %d tools in /%s), sudo (%s) + %d shared libraries",
		bashDesc, bbDesc, linked, AppletDir, sudoDesc, len(res.Libs)), nil
}

// unpackProgram unpacks inDeb (and what keep also wants) from the
// profile's package in and checks that it is built for the profile's arch.
// field names the profile field in errors. It returns the unpacked folder
// and the package's description.
func (b *builder) unpackProgram(ctx context.Context, field string, in profile.Input, inDeb string, keep func(string) bool) (string, string, error) {
	p, desc, err := b.resolveInput(ctx, in, b.prof.DebArch())
	if err != nil {
		return "", "", fmt.Errorf("%s: %w (scripts/fetch-inputs.sh %s fetches it)", field, err, b.prof.Arch)
	}
	dir, err := b.unpackDeb(p, path.Base(inDeb), func(n string) bool { return n == inDeb || keep != nil && keep(n) })
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", field, err)
	}
	if err := checkMachine(filepath.Join(dir, inDeb), b.prof.Arch); err != nil {
		return "", "", fmt.Errorf("%s %s: %w", field, desc, err)
	}
	return dir, desc, nil
}

// libraryTrees unpacks the library folders (lib/, usr/lib/) of the
// profile's Debian packages names (field names them in errors).
func (b *builder) libraryTrees(ctx context.Context, field string, names []string) ([]string, error) {
	var trees []string
	for _, name := range names {
		lp, _, err := b.resolveInput(ctx, profile.Input{Package: name}, b.prof.DebArch())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w (scripts/fetch-inputs.sh %s fetches it)", field, name, err, b.prof.Arch)
		}
		ld, err := b.unpackDeb(lp, "libs", func(n string) bool {
			return strings.HasPrefix(n, "lib/") || strings.HasPrefix(n, "usr/lib/")
		})
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", field, name, err)
		}
		trees = append(trees, ld)
	}
	return trees, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// shipClosure copies a closure's libraries into the root at their target
// paths and links the program interpreter's PT_INTERP path to the copy
// found among them when that path is not itself shipped
// (lib/ld-linux-aarch64.so.1 -> aarch64-linux-gnu/ld-linux-aarch64.so.1).
func shipClosure(t tree.Tree, res sharedlib.Result) error {
	have := map[string]bool{}
	for _, l := range res.Libs {
		t.Copy(l.Dest, 0o755, l.Source)
		have[l.Dest] = true
	}
	if res.Interp == "" || have[res.Interp] {
		return nil
	}
	target := ""
	for _, l := range res.Libs {
		if path.Base(l.Dest) == path.Base(res.Interp) {
			target = l.Dest
		}
	}
	if target == "" {
		return fmt.Errorf("the interpreter %s is not among the libraries found", res.Interp)
	}
	if _, ok := t[res.Interp]; ok {
		return nil // shipped already, by another program's closure
	}
	rel, err := filepath.Rel(path.Dir(res.Interp), target)
	if err != nil {
		return err
	}
	t.Symlink(res.Interp, rel)
	return nil
}
