package users

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testKey is a deterministic public key line.
func testKey(t *testing.T, seed byte, comment string) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update)", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// fixedHash hashes with a fixed salt, so that golden files are stable.
func fixedHash(pw string) (string, error) { return crypt.Crypt(pw, "$6$goldensalt") }

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to chown files to uid 1000 (CI runs as root)")
	}
}

// keyServer serves /alice.keys (two keys) and 404 for anything else.
func keyServer(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/alice.keys" {
			fmt.Fprint(w, body)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func seedImage(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\ndaemon:x:1:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestApplyGoldenAndIdempotent(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	seedImage(t, root)
	fsys := host.FS{Root: root}
	lit := testKey(t, 1, "laptop")
	srv := keyServer(t, testKey(t, 2, "")+"\n"+testKey(t, 3, "")+"\n")
	cfg := &cloudconfig.Config{
		SSHAuthorizedKeys: []string{lit, "github:alice", lit},
		Keso:              cloudconfig.System{Password: "s3cret"},
	}
	opt := Options{Fetcher: HTTPFetcher{}, GitHubURL: srv.URL, Hash: fixedHash}

	rec := phase.NewRecorder("users", nil, nil)
	Apply(cfg, fsys, opt, rec)
	r := rec.Done()
	if !r.OK() {
		t.Fatalf("failures: %+v", r.Failures)
	}
	for _, f := range []struct{ node, golden string }{
		{PasswdFile, "passwd"}, {GroupFile, "group"}, {ShadowFile, "shadow"},
		{AuthorizedKeysFile, "authorized_keys"}, {KeyCacheDir + "/github-alice.keys", "github-alice.keys"},
	} {
		b, err := fsys.ReadFile(f.node)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, f.golden, b)
	}
	h, _ := ShadowHash(mustRead(t, fsys, ShadowFile), Rancher)
	if err := crypt.Verify(h, "s3cret"); err != nil {
		t.Errorf("rancher's shadow hash does not verify the configured password: %v", err)
	}
	checkMeta(t, fsys, ShadowFile, 0o600, 0, 0)
	checkMeta(t, fsys, RancherHome, 0o750, RancherUID, RancherGID)
	checkMeta(t, fsys, RancherHome+"/.ssh", 0o700, RancherUID, RancherGID)
	checkMeta(t, fsys, AuthorizedKeysFile, 0o600, RancherUID, RancherGID)
	wantTargets := []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/home/rancher", "/home/rancher/.ssh", KeyCacheDir + "/github-alice.keys", AuthorizedKeysFile}
	if got := targets(r); strings.Join(got, " ") != strings.Join(wantTargets, " ") {
		t.Errorf("changes = %v, want %v", got, wantTargets)
	}

	// The second run, with the real random-salt hasher, must keep the hash
	// that already matches and change nothing.
	opt.Hash = nil
	rec = phase.NewRecorder("users", nil, nil)
	Apply(cfg, fsys, opt, rec)
	if r := rec.Done(); len(r.Changes) != 0 || !r.OK() {
		t.Errorf("second Apply: changes %+v failures %+v, want none", r.Changes, r.Failures)
	}
}

func mustRead(t *testing.T, fsys host.FS, p string) []byte {
	t.Helper()
	b, err := fsys.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func targets(r phase.Report) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.Target)
	}
	return out
}

func checkMeta(t *testing.T, fsys host.FS, p string, mode fs.FileMode, uid, gid int) {
	t.Helper()
	fi, err := fsys.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: mode %04o owner %d:%d, want %04o %d:%d", p, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func TestOfflineUsesCacheThenFailedFetchKeepsCache(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	fsys := host.FS{Root: root}
	k := testKey(t, 7, "")
	if err := fsys.WriteFileAtomic(KeyCacheDir+"/gitlab-bob.keys", []byte(k+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &cloudconfig.Config{SSHAuthorizedKeys: []string{"gitlab:bob", "github:nocache"}}

	// Offline: cached keys are used; the uncached entry is not an error.
	rec := phase.NewRecorder("users", nil, nil)
	Apply(cfg, fsys, Options{}, rec)
	if r := rec.Done(); !r.OK() {
		t.Errorf("offline pass failures: %+v, want none", r.Failures)
	}
	if got := string(mustRead(t, fsys, AuthorizedKeysFile)); !strings.Contains(got, k) {
		t.Errorf("authorized_keys lacks the cached key:\n%s", got)
	}

	// Online but the server answers 404 for bob: a failure naming the
	// entry, and the cached key stays in authorized_keys.
	srv := keyServer(t, "")
	rec = phase.NewRecorder("users", nil, nil)
	Apply(cfg, fsys, Options{Fetcher: HTTPFetcher{}, GitLabURL: srv.URL, GitHubURL: srv.URL}, rec)
	r := rec.Done()
	if len(r.Failures) != 2 {
		t.Fatalf("failures = %+v, want 2 (bob: 404 with cache, nocache: 404)", r.Failures)
	}
	if f := r.Failures[0]; f.Path != "ssh_authorized_keys[0]" || !strings.Contains(f.Err, "404") || !strings.Contains(f.Err, "using 1 cached keys") {
		t.Errorf("failure[0] = %+v", f)
	}
	if f := r.Failures[1]; f.Path != "ssh_authorized_keys[1]" {
		t.Errorf("failure[1] = %+v", f)
	}
	if got := string(mustRead(t, fsys, AuthorizedKeysFile)); !strings.Contains(got, k) {
		t.Errorf("authorized_keys lost the cached key after a failed fetch:\n%s", got)
	}
}

func TestBadLiteralKeyIsReportedOthersKept(t *testing.T) {
	needRoot(t)
	fsys := host.FS{Root: t.TempDir()}
	good := testKey(t, 9, "ok")
	cfg := &cloudconfig.Config{SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA... k3os-doc-example", good}}
	rec := phase.NewRecorder("users", nil, nil)
	Apply(cfg, fsys, Options{}, rec)
	r := rec.Done()
	if len(r.Failures) != 1 || r.Failures[0].Path != "ssh_authorized_keys[0]" {
		t.Errorf("failures = %+v, want one at ssh_authorized_keys[0]", r.Failures)
	}
	if got := string(mustRead(t, fsys, AuthorizedKeysFile)); !strings.Contains(got, good) {
		t.Errorf("authorized_keys lacks the good key:\n%s", got)
	}
}

func TestPasswordHash(t *testing.T) {
	cur, _ := crypt.Crypt("old", "$6$cur")
	boom := errors.New("no entropy")
	for _, tc := range []struct {
		name, configured, current string
		hash                      func(string) (string, error)
		want                      string
		wantErr                   bool
	}{
		{"none locks", "", cur, fixedHash, Locked, false},
		{"crypt hash as is", "$6$abc$def", cur, fixedHash, "$6$abc$def", false},
		{"md5 hash as is (k3OS)", "$1$abc$def", "", fixedHash, "$1$abc$def", false},
		{"same plain keeps hash", "old", cur, func(string) (string, error) { return "", boom }, cur, false},
		{"new plain rehashes", "new", cur, fixedHash, mustFixed("new"), false},
		{"hash error", "new", cur, func(string) (string, error) { return "", boom }, "", true},
	} {
		got, err := PasswordHash(tc.configured, tc.current, tc.hash)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q, err %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func mustFixed(pw string) string { h, _ := fixedHash(pw); return h }

func TestPlanAccountsKeepsOthersAndFixesRancher(t *testing.T) {
	cur := Accounts{
		Passwd: []byte("root:x:0:0:Super User:/root:/bin/bash\nrancher:x:1001:1001::/tmp:/bin/false\nalice:x:1002:1002::/home/alice:/bin/sh\n"),
		Group:  []byte("root:x:0:\nrancher:x:1001:alice\n"),
		Shadow: []byte("root:$6$r$x:19000:0:99999:7:::\nrancher:!:19000:0:99999:7:::\n"),
	}
	got := PlanAccounts(cur, "$6$s$h", "/bin/bash")
	want := Accounts{
		Passwd: []byte("root:x:0:0:Super User:/root:/bin/bash\nrancher:x:1000:1000:rancher:/home/rancher:/bin/bash\nalice:x:1002:1002::/home/alice:/bin/sh\n"),
		Group:  []byte("root:x:0:\nrancher:x:1000:alice\n"),
		Shadow: []byte("root:$6$r$x:19000:0:99999:7:::\nrancher:$6$s$h:19000:0:99999:7:::\n"),
	}
	for _, f := range []struct {
		name      string
		got, want []byte
	}{{"passwd", got.Passwd, want.Passwd}, {"group", got.Group, want.Group}, {"shadow", got.Shadow, want.Shadow}} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s:\n got %q\nwant %q", f.name, f.got, f.want)
		}
	}
}

// TestApplyShellFollowsImage: rancher's login shell is bash when the image
// carries /bin/bash (the admin userland), /bin/sh when it does not.
func TestApplyShellFollowsImage(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name     string
		withBash bool
		want     string
	}{
		{"image with bash", true, "/bin/bash"},
		{"image without bash", false, "/bin/sh"},
	} {
		root := t.TempDir()
		seedImage(t, root)
		if tc.withBash {
			os.MkdirAll(filepath.Join(root, "bin"), 0o755)
			if err := os.WriteFile(filepath.Join(root, "bin/bash"), []byte("#!"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fsys := host.FS{Root: root}
		rec := phase.NewRecorder("users", nil, nil)
		Apply(&cloudconfig.Config{}, fsys, Options{Hash: fixedHash}, rec)
		db := ParseDB(mustRead(t, fsys, PasswdFile), mustRead(t, fsys, GroupFile))
		if got := db.Users[Rancher].Shell; got != tc.want {
			t.Errorf("%s: rancher's shell = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestOwner(t *testing.T) {
	db := ParseDB([]byte("root:x:0:0::/root:/bin/sh\nrancher:x:1000:1000::/home/rancher:/bin/sh\n"), []byte("root:x:0:\nrancher:x:1000:\nadm:x:4:\n"))
	for _, tc := range []struct {
		owner    string
		uid, gid int
		err      bool
	}{
		{"", 0, 0, false}, {"rancher", 1000, 1000, false}, {"rancher:adm", 1000, 4, false},
		{"1000", 1000, 1000, false}, {"33:44", 33, 44, false}, {"root:rancher", 0, 1000, false},
		{"nobody", 0, 0, true}, {"rancher:nogroup", 0, 0, true},
	} {
		uid, gid, err := db.Owner(tc.owner)
		if (err != nil) != tc.err || uid != tc.uid || gid != tc.gid {
			t.Errorf("Owner(%q) = %d, %d, %v; want %d, %d, err %v", tc.owner, uid, gid, err, tc.uid, tc.gid, tc.err)
		}
	}
}

func TestResolveKey(t *testing.T) {
	for _, tc := range []struct{ in, url, cache string }{
		{"github:alice", "https://github.com/alice.keys", KeyCacheDir + "/github-alice.keys"},
		{"gitlab:bob", "https://gitlab.com/bob.keys", KeyCacheDir + "/gitlab-bob.keys"},
		{"https://example.com/k", "https://example.com/k", KeyCacheDir + "/url-"},
		{"ssh-ed25519 AAAA x", "", ""},
		// Not user names (cloudconfig refuses them): the cache stays in
		// KeyCacheDir, named after the URL (found by FuzzResolveKey).
		{"github:/", "https://github.com//.keys", KeyCacheDir + "/url-"},
		{"github:../../../root/.ssh/authorized", "https://github.com/../../../root/.ssh/authorized.keys", KeyCacheDir + "/url-"},
		{"gitlab:a/b", "https://gitlab.com/a/b.keys", KeyCacheDir + "/url-"},
	} {
		got := ResolveKey(tc.in, "", "")
		if got.URL != tc.url || !strings.HasPrefix(got.Cache, tc.cache) || (tc.cache == "") != (got.Cache == "") {
			t.Errorf("ResolveKey(%q) = %+v, want url %q cache %q…", tc.in, got, tc.url, tc.cache)
		}
	}
}
