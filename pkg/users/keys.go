package users

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/fetch"
)

// KeyCacheDir keeps the keys fetched for github:/gitlab:/URL entries, for
// boots without a network.
const KeyCacheDir = "/var/lib/keso/ssh-keys"

// Default sources of github:USER and gitlab:USER keys.
const (
	DefaultGitHubURL = "https://github.com"
	DefaultGitLabURL = "https://gitlab.com"
)

// Fetcher gets the body of an http(s) URL.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// HTTPFetcher fetches with pkg/fetch's small-request policy: retried while
// the network comes up, within 20 s; Client nil means the system's roots.
type HTTPFetcher struct {
	Client *http.Client
}

// maxKeysBody bounds a downloaded key list.
const maxKeysBody = 1 << 20

// Fetch implements Fetcher.
func (h HTTPFetcher) Fetch(ctx context.Context, url string) ([]byte, error) {
	b, _, err := fetch.Get(ctx, h.Client, fetch.Retry{Budget: 20 * time.Second, AttemptTimeout: 20 * time.Second}, url, nil, maxKeysBody)
	return b, err
}

// KeySource is one ssh_authorized_keys entry, resolved.
type KeySource struct {
	// Entry is the config value as written.
	Entry string
	// Literal is the key line for a literal entry ("" for a remote one).
	Literal string
	// URL to fetch for a remote entry.
	URL string
	// Cache is the cache file of a remote entry, under KeyCacheDir.
	Cache string
}

// Remote reports whether the keys come from the network.
func (k KeySource) Remote() bool { return k.URL != "" }

// ResolveKey classifies one ssh_authorized_keys entry. githubURL and
// gitlabURL replace https://github.com and https://gitlab.com when not
// empty (tests point them at a local server).
func ResolveKey(entry, githubURL, gitlabURL string) KeySource {
	s := strings.TrimSpace(entry)
	if githubURL == "" {
		githubURL = DefaultGitHubURL
	}
	if gitlabURL == "" {
		gitlabURL = DefaultGitLabURL
	}
	switch {
	case strings.HasPrefix(s, "github:"):
		u := s[len("github:"):]
		url := strings.TrimRight(githubURL, "/") + "/" + u + ".keys"
		return KeySource{Entry: entry, URL: url, Cache: userCache("github", u, url)}
	case strings.HasPrefix(s, "gitlab:"):
		u := s[len("gitlab:"):]
		url := strings.TrimRight(gitlabURL, "/") + "/" + u + ".keys"
		return KeySource{Entry: entry, URL: url, Cache: userCache("gitlab", u, url)}
	case strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://"):
		return KeySource{Entry: entry, URL: s, Cache: urlCache(s)}
	}
	return KeySource{Entry: entry, Literal: s}
}

// userCache is the cache file of a github:/gitlab: entry, named after the
// user. A "user" with a '/' (which cloudconfig refuses) would name a file
// elsewhere ("github:../x"), so its cache is named after its URL instead.
func userCache(site, user, url string) string {
	if strings.Contains(user, "/") {
		return urlCache(url)
	}
	return KeyCacheDir + "/" + site + "-" + user + ".keys"
}

// urlCache is the cache file of keys fetched from url.
func urlCache(url string) string {
	sum := sha256.Sum256([]byte(url))
	return KeyCacheDir + "/url-" + hex.EncodeToString(sum[:8]) + ".keys"
}

// ParseKeys returns the valid authorized_keys lines of b (blank lines and
// comments skipped), and an error naming the first invalid line, if any.
func ParseKeys(b []byte) ([]string, error) {
	var out []string
	var firstErr error
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d: not an SSH public key: %w", i+1, err)
			}
			continue
		}
		out = append(out, l)
	}
	return out, firstErr
}

// AuthorizedKeys renders the authorized_keys file: a header, then each key
// once, in order.
func AuthorizedKeys(keys []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by keso from ssh_authorized_keys at every boot; edits here are replaced.\n")
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		b.WriteString(k)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
