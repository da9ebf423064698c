package users

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParseKeys: a github:/gitlab:/URL key response (or a cached copy, or
// a literal entry) gives only lines that are SSH public keys, and the
// authorized_keys file written from them parses to the same keys, once each.
func FuzzParseKeys(f *testing.F) {
	for _, name := range []string{"github-alice.keys", "authorized_keys"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU\r\n\r\n# c\nnot a key\n",
		`command="echo hi",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU x`,
		"<!DOCTYPE html><html>Not Found</html>", "ssh-ed25519 AAAA", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _ := ParseKeys(data)
		var once []string
		seen := map[string]bool{}
		for _, k := range keys {
			if k == "" || k != strings.TrimSpace(k) || strings.HasPrefix(k, "#") || strings.Contains(k, "\n") {
				t.Fatalf("ParseKeys(%q): line %q", data, k)
			}
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				t.Fatalf("ParseKeys(%q): line %q is not a key: %v", data, k, err)
			}
			if !seen[k] {
				seen[k] = true
				once = append(once, k)
			}
		}
		again, err := ParseKeys(AuthorizedKeys(keys))
		if err != nil || !reflect.DeepEqual(again, once) {
			t.Fatalf("ParseKeys(AuthorizedKeys(%q)) = %q, %v; want %q", keys, again, err, once)
		}
	})
}

// FuzzResolveKey: an ssh_authorized_keys entry is a literal key or a
// remote one fetched from a URL and cached in a file directly inside
// KeyCacheDir, whatever the entry holds.
func FuzzResolveKey(f *testing.F) {
	for _, s := range []string{
		"github:alice", "gitlab:bob", "https://example.com/k", "ssh-ed25519 AAAA x", " github:alice ", "github:",
		"http://[::1]:8080/keys?x=1#y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		k := ResolveKey(entry, "", "")
		if k.Entry != entry {
			t.Fatalf("ResolveKey(%q).Entry = %q", entry, k.Entry)
		}
		if !k.Remote() {
			if k.Literal != strings.TrimSpace(entry) || k.Cache != "" {
				t.Fatalf("ResolveKey(%q) = %+v: a literal entry", entry, k)
			}
			return
		}
		if k.Literal != "" {
			t.Fatalf("ResolveKey(%q) = %+v: remote and literal", entry, k)
		}
		if dir, base := path.Split(k.Cache); dir != KeyCacheDir+"/" || !strings.HasSuffix(base, ".keys") || strings.Contains(base, "/") || path.Clean(k.Cache) != k.Cache {
			t.Fatalf("ResolveKey(%q): cache file %q is not a file in %s", entry, k.Cache, KeyCacheDir)
		}
		s := strings.TrimSpace(entry)
		for _, p := range []struct{ prefix, url string }{{"github:", DefaultGitHubURL + "/"}, {"gitlab:", DefaultGitLabURL + "/"}} {
			if strings.HasPrefix(s, p.prefix) && !strings.HasPrefix(k.URL, p.url) {
				t.Fatalf("ResolveKey(%q): URL %q is not on %s", entry, k.URL, p.url)
			}
		}
	})
}
