package sshd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSFTPNoMoreThanTheShell logs in with the real sftp client as a user
// who is not root (uid 1000) on a server running as root, and tries to
// write where that user's shell could not: path traversal, absolute paths,
// symlinks in the home that point at /etc or at root's files, renames,
// removals and mode changes. The SFTP helper runs as the user, so the
// kernel refuses each one, exactly as it refuses the same thing done from
// the user's shell (checked beside it). Nothing is confined to the home:
// what the user may write elsewhere (/tmp) stays writable, as in a shell.
func TestSFTPNoMoreThanTheShell(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: the server must run as root and the user as uid 1000 to show that the kernel, not the SFTP server, draws the line (CI runs as root); SFTP confinement is NOT tested")
	}
	needTool(t, "sftp")
	const uid = 1000
	e := startServer(t, envOpts{rancherID: uid})

	// A tree that uid 1000 can reach: a home it owns, and beside it a
	// directory of root's that it may read but not write.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		os.Chmod(d, 0o755)
	}
	home := filepath.Join(base, "home", "rancher")
	victim := filepath.Join(base, "victim")
	for _, d := range []string{home, victim} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	victimFile := filepath.Join(victim, "file")
	os.WriteFile(victimFile, []byte("root's\n"), 0o644)
	// Symlinks in the home, made by root (as a careless admin or an image
	// might): to /etc, to root's directory, and to one of root's files.
	for name, target := range map[string]string{"etc-link": "/etc", "victim-link": victim, "file-link": victimFile} {
		if err := os.Symlink(target, filepath.Join(home, name)); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(base, "src")
	os.WriteFile(src, []byte("payload\n"), 0o644)

	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nrancher:x:%d:%d:rancher:%s:/bin/sh\n", uid, uid, home)
	e.srv.FS.WriteFileAtomic("/etc/passwd", []byte(passwd), 0o644)
	e.srv.FS.WriteFileAtomic(filepath.Join(home, ".ssh/authorized_keys"), ssh.MarshalAuthorizedKey(e.signer.PublicKey()), 0o600)
	e.srv.SFTPCommand = sftpHelper(t, base)

	// Files that must never appear; removed if a case fails.
	evil := func(name string) string {
		p := filepath.Join("/etc", fmt.Sprintf("keso-sftp-test-%d-%s", os.Getpid(), name))
		t.Cleanup(func() { os.RemoveAll(p) })
		return p
	}
	absent := func(p string) func() error {
		return func() error {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists", p)
			}
			return nil
		}
	}
	unchanged := func() error {
		fi, err := os.Stat(victimFile)
		if err != nil {
			return fmt.Errorf("%s: %v", victimFile, err)
		}
		b, _ := os.ReadFile(victimFile)
		if string(b) != "root's\n" || fi.Mode().Perm() != 0o644 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			return fmt.Errorf("%s changed: %q mode %v uid %d", victimFile, b, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
		}
		return nil
	}
	up := strings.Repeat("../", 12)
	tests := []struct {
		name  string
		batch string // sftp commands, run as rancher from the home
		shell string // the same from rancher's shell (must fail too); "" for none
		check func() error
		// What each reports, if not "Permission denied" (EACCES): chmod of
		// another's file is EPERM, and pkg/sftp answers a failed rename
		// with the generic SSH_FX_FAILURE.
		sftpErr, shellErr string
	}{
		{"traversal", "put " + src + " " + up + "etc/" + filepath.Base(evil("dotdot")), "cp " + src + " " + up + "etc/" + filepath.Base(evil("dotdot")), absent(evil("dotdot")), "", ""},
		{"absolute path", "put " + src + " " + evil("abs"), "cp " + src + " " + evil("abs"), absent(evil("abs")), "", ""},
		{"symlink to /etc", "put " + src + " etc-link/" + filepath.Base(evil("link")), "cp " + src + " etc-link/" + filepath.Base(evil("link")), absent(evil("link")), "", ""},
		{"symlink made over sftp", "symlink /etc mylink\nput " + src + " mylink/" + filepath.Base(evil("mylink")), "", absent(evil("mylink")), "", ""},
		{"symlink to root's directory", "put " + src + " victim-link/new", "cp " + src + " victim-link/new", absent(filepath.Join(victim, "new")), "", ""},
		{"symlink to root's file", "put " + src + " file-link", "cp " + src + " file-link", unchanged, "", ""},
		{"mkdir in /etc", "mkdir " + evil("dir"), "mkdir " + evil("dir"), absent(evil("dir")), "", ""},
		{"remove root's file", "rm " + victimFile, "rm -f " + victimFile, unchanged, "", ""},
		{name: "rename root's file", batch: "rename " + victimFile + " stolen", shell: "mv " + victimFile + " stolen", check: unchanged, sftpErr: "Failure"},
		{name: "chmod root's file", batch: "chmod 666 " + victimFile, shell: "chmod 666 " + victimFile, check: unchanged, shellErr: "Operation not permitted"},
		{"read /etc/shadow", "get /etc/shadow " + filepath.Join(t.TempDir(), "shadow"), "cat /etc/shadow", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range []*string{&tt.sftpErr, &tt.shellErr} {
				if *w == "" {
					*w = "Permission denied"
				}
			}
			out, errs, code := e.sftpBatch(t, tt.batch)
			if code == 0 {
				t.Errorf("sftp as uid %d: %q: got status 0 (out %q), want refused", uid, tt.batch, out)
			} else if !strings.Contains(errs, tt.sftpErr) {
				t.Errorf("sftp as uid %d: %q: got stderr %q, want %q", uid, tt.batch, errs, tt.sftpErr)
			}
			if tt.check != nil {
				if err := tt.check(); err != nil {
					t.Errorf("sftp as uid %d: %q: %v", uid, tt.batch, err)
				}
			}
			if tt.shell != "" {
				if out, errs, code := e.ssh(e.keyFile, "rancher", nil, tt.shell); code == 0 {
					t.Errorf("shell as uid %d: %q: got status 0 (%q), want it refused like sftp", uid, tt.shell, out)
				} else if !strings.Contains(errs, tt.shellErr) {
					t.Errorf("shell as uid %d: %q: got stderr %q, want %q", uid, tt.shell, errs, tt.shellErr)
				}
				if tt.check != nil {
					if err := tt.check(); err != nil {
						t.Errorf("shell as uid %d: %q: %v", uid, tt.shell, err)
					}
				}
			}
		})
	}

	// What the user may write, it may write: its home, relative and
	// absolute, as uid 1000.
	for _, dst := range []string{"up-relative", filepath.Join(home, "up-absolute")} {
		if out, errs, code := e.sftpBatch(t, "put "+src+" "+dst); code != 0 {
			t.Errorf("sftp put %s as uid %d: status %d (%q %q), want written", dst, uid, code, out, errs)
		}
		p := dst
		if !filepath.IsAbs(p) {
			p = filepath.Join(home, p)
		}
		if fi, err := os.Stat(p); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
			t.Errorf("sftp put %s: %v; want a file owned by uid %d", p, err, uid)
		}
	}
}

// sftpHelper copies the test binary where uid 1000 can run it, as the
// SFTP helper (TestMain serves SFTP when started with sftpHelperArg).
func sftpHelper(t *testing.T, dir string) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "sftp-helper")
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{helper, sftpHelperArg}
}

// sftpBatch runs the real sftp client as rancher with batch (sftp -b:
// the first failing command ends it with a non-zero status).
func (e *testEnv) sftpBatch(t *testing.T, batch string) (string, string, int) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(batch+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(e.sshArgs(e.keyFile), "-P", fmt.Sprint(e.port), "-b", f, "rancher@127.0.0.1")
	return clientRun{args: args}.run(t, "sftp")
}

// TestSFTPInProcessOnlyWithServerIDs: SFTP is served in-process only to a
// user whose uid and gid are both the server's (a user with the server's
// uid but another gid gets the helper, run with that gid, as its shell
// would be); without a helper it is refused rather than served with the
// server's group.
func TestSFTPInProcessOnlyWithServerIDs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gid    int
		wantOK bool
	}{
		{"server's uid and gid", os.Getgid(), true},
		{"server's uid, another gid", os.Getgid() + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, envOpts{rancherID: -1})
			passwd := fmt.Sprintf("rancher:x:%d:%d:rancher:/home/rancher:/bin/sh\n", os.Getuid(), tc.gid)
			e.srv.FS.WriteFileAtomic("/etc/passwd", []byte(passwd), 0o644)
			c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.RequestSubsystem("sftp"); (err == nil) != tc.wantOK {
				t.Errorf("sftp subsystem without SFTPCommand for uid %d gid %d (server %d/%d): got err %v, want accepted=%v", os.Getuid(), tc.gid, os.Getuid(), os.Getgid(), err, tc.wantOK)
			}
		})
	}
}
