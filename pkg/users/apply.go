package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/phase"
)

// FS is the root-prefixed file system the phase writes through; host.FS
// implements it.
type FS interface {
	ReadFile(p string) ([]byte, error)
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
	MkdirAll(p string, mode fs.FileMode) error
	Chown(p string, uid, gid int) error
	Chmod(p string, mode fs.FileMode) error
	Stat(p string) (fs.FileInfo, error)
}

// Options are the network side of the phase.
type Options struct {
	// Fetcher gets remote keys; nil means offline (cache only).
	Fetcher Fetcher
	// GitHubURL and GitLabURL replace the default sites (tests).
	GitHubURL, GitLabURL string
	// Timeout bounds all fetches together (default 60 s).
	Timeout time.Duration
	// Hash hashes a plain password (default crypt.Hash).
	Hash func(string) (string, error)
}

// Modes and places of what the phase writes.
const (
	shadowMode = 0o600
	homeMode   = 0o750
	sshDirMode = 0o700
	keysMode   = 0o600
	// AuthorizedKeysFile is rancher's authorized_keys.
	AuthorizedKeysFile = RancherHome + "/.ssh/authorized_keys"
)

// Apply runs the users phase: accounts, home, authorized_keys.
func Apply(cfg *cloudconfig.Config, fsys FS, opt Options, rec *phase.Recorder) {
	applyAccounts(cfg, fsys, opt, rec)
	applyHome(fsys, rec)
	applyKeys(cfg, fsys, opt, rec)
}

func readOptional(fsys FS, p string) ([]byte, error) {
	b, err := fsys.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func applyAccounts(cfg *cloudconfig.Config, fsys FS, opt Options, rec *phase.Recorder) {
	var cur Accounts
	var err error
	for _, f := range []struct {
		p   string
		dst *[]byte
	}{{PasswdFile, &cur.Passwd}, {GroupFile, &cur.Group}, {ShadowFile, &cur.Shadow}} {
		if *f.dst, err = readOptional(fsys, f.p); err != nil {
			rec.Fail("", err)
			return
		}
	}
	hashFn := opt.Hash
	if hashFn == nil {
		hashFn = crypt.Hash
	}
	current, _ := ShadowHash(cur.Shadow, Rancher)
	h, err := PasswordHash(cfg.Keso.Password, current, hashFn)
	if err != nil {
		rec.Fail("keso.password", err)
		h = current
		if h == "" {
			h = Locked
		}
	}
	shell := RancherShell
	if _, err := fsys.Stat(RancherShell); err != nil {
		shell = FallbackShell // an image built without the admin userland
	}
	want := PlanAccounts(cur, h, shell)
	for _, f := range []struct {
		p        string
		old, new []byte
		mode     fs.FileMode
		detail   string
	}{
		{PasswdFile, cur.Passwd, want.Passwd, 0o644, ""},
		{GroupFile, cur.Group, want.Group, 0o644, ""},
		{ShadowFile, cur.Shadow, want.Shadow, shadowMode, passwordDetail(h, current)},
	} {
		if bytes.Equal(f.old, f.new) {
			continue
		}
		if err := fsys.WriteFileAtomic(f.p, f.new, f.mode); err != nil {
			rec.Fail("", err)
			continue
		}
		rec.Change("write", f.p, f.detail)
	}
}

// passwordDetail says what happened to rancher's password, never the hash.
func passwordDetail(h, old string) string {
	switch {
	case h == old:
		return ""
	case h == Locked:
		return "rancher: no password (console login disabled)"
	default:
		return "rancher: password set"
	}
}

// ensureDir creates p with mode and owner, or fixes them; it reports a
// change only when something was different.
func ensureDir(fsys FS, p string, mode fs.FileMode, uid, gid int, rec *phase.Recorder) bool {
	fi, err := fsys.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := fsys.MkdirAll(p, mode); err != nil {
			rec.Fail("", err)
			return false
		}
		if err := fixMeta(fsys, p, mode, uid, gid); err != nil {
			rec.Fail("", err)
			return false
		}
		rec.Change("mkdir", p, fmt.Sprintf("mode %04o, owner %d:%d", mode, uid, gid))
		return true
	case err != nil:
		rec.Fail("", err)
		return false
	case !fi.IsDir():
		rec.Fail("", fmt.Errorf("%s exists and is not a directory", p))
		return false
	}
	if !metaEqual(fi, mode, uid, gid) {
		if err := fixMeta(fsys, p, mode, uid, gid); err != nil {
			rec.Fail("", err)
			return false
		}
		rec.Change("chmod", p, fmt.Sprintf("mode %04o, owner %d:%d", mode, uid, gid))
	}
	return true
}

func fixMeta(fsys FS, p string, mode fs.FileMode, uid, gid int) error {
	if err := fsys.Chown(p, uid, gid); err != nil {
		return err
	}
	return fsys.Chmod(p, mode)
}

func metaEqual(fi fs.FileInfo, mode fs.FileMode, uid, gid int) bool {
	if fi.Mode().Perm() != mode.Perm() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || (int(st.Uid) == uid && int(st.Gid) == gid)
}

func applyHome(fsys FS, rec *phase.Recorder) {
	if ensureDir(fsys, RancherHome, homeMode, RancherUID, RancherGID, rec) {
		ensureDir(fsys, path.Dir(AuthorizedKeysFile), sshDirMode, RancherUID, RancherGID, rec)
	}
}

func applyKeys(cfg *cloudconfig.Config, fsys FS, opt Options, rec *phase.Recorder) {
	timeout := opt.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var keys []string
	for i, e := range cfg.SSHAuthorizedKeys {
		p := fmt.Sprintf("ssh_authorized_keys[%d]", i)
		src := ResolveKey(e, opt.GitHubURL, opt.GitLabURL)
		if !src.Remote() {
			ks, err := ParseKeys([]byte(src.Literal))
			if err != nil || len(ks) != 1 {
				rec.Fail(p, fmt.Errorf("not an SSH public key: %v", err))
				continue
			}
			keys = append(keys, ks[0])
			continue
		}
		keys = append(keys, remoteKeys(ctx, fsys, opt.Fetcher, src, p, rec)...)
	}
	want := AuthorizedKeys(keys)
	old, err := readOptional(fsys, AuthorizedKeysFile)
	if err != nil {
		rec.Fail("ssh_authorized_keys", err)
		return
	}
	fi, statErr := fsys.Stat(AuthorizedKeysFile)
	if bytes.Equal(old, want) && statErr == nil && metaEqual(fi, keysMode, RancherUID, RancherGID) {
		return
	}
	if err := fsys.WriteFileAtomic(AuthorizedKeysFile, want, keysMode); err != nil {
		rec.Fail("ssh_authorized_keys", err)
		return
	}
	if err := fsys.Chown(AuthorizedKeysFile, RancherUID, RancherGID); err != nil {
		rec.Fail("ssh_authorized_keys", err)
		return
	}
	rec.Change("write", AuthorizedKeysFile, fmt.Sprintf("%d keys", countKeys(want)))
}

func countKeys(b []byte) int {
	ks, _ := ParseKeys(b)
	return len(ks)
}

// remoteKeys fetches a remote entry (when online) and refreshes its cache,
// or falls back to the cache.
func remoteKeys(ctx context.Context, fsys FS, f Fetcher, src KeySource, p string, rec *phase.Recorder) []string {
	cached, cacheErr := readOptional(fsys, src.Cache)
	if cacheErr != nil {
		rec.Fail(p, cacheErr)
	}
	cachedKeys, _ := ParseKeys(cached)
	if f == nil {
		return cachedKeys // offline pass: the online pass refreshes
	}
	body, err := f.Fetch(ctx, src.URL)
	var keys []string
	if err == nil {
		keys, err = ParseKeys(body)
		if len(keys) > 0 {
			err = nil // skip a bad line, keep the good ones
		} else if err == nil {
			err = fmt.Errorf("%s lists no SSH keys", src.URL)
		}
	}
	if err != nil {
		if len(cachedKeys) > 0 {
			err = fmt.Errorf("%s: %w (using %d cached keys)", src.Entry, err, len(cachedKeys))
		} else {
			err = fmt.Errorf("%s: %w", src.Entry, err)
		}
		rec.Fail(p, err)
		return cachedKeys
	}
	fresh := []byte(joinLines(keys))
	if !bytes.Equal(fresh, cached) {
		if err := fsys.WriteFileAtomic(src.Cache, fresh, 0o644); err != nil {
			rec.Fail(p, fmt.Errorf("cache keys of %s: %w", src.Entry, err))
		} else {
			rec.Change("cache", src.Cache, fmt.Sprintf("%d keys of %s", len(keys), src.Entry))
		}
	}
	return keys
}

func joinLines(ls []string) string {
	var b bytes.Buffer
	for _, l := range ls {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
