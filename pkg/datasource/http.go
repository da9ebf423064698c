package datasource

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keso-os/keso/pkg/fetch"
)

// Retry bounds how long a network source keeps trying while the network
// comes up (pkg/fetch's policy for small requests).
type Retry = fetch.Retry

// HTTP is the `http` datasource: user-data fetched from a URL
// (keso.config_url, or install.config_url for the installer). HTTPS is
// verified against the system roots (/etc/ssl/certs/ca-certificates.crt in
// the root file system, which Go's crypto/x509 reads on Linux).
type HTTP struct {
	URL    string
	Client *http.Client // nil: a client with the system roots
	Retry  Retry
}

// Fetch GETs the URL, retrying with backoff while the network comes up
// (connection errors, timeouts, 5xx, 408 and 429). Any other status is a
// permanent error.
func (h HTTP) Fetch(ctx context.Context) (Found, error) {
	name := Redact(h.URL)
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Found{}, fmt.Errorf("config url %q: want an http:// or https:// URL with a host", name)
	}
	data, _, err := get(ctx, h.client(), h.Retry, h.URL, nil)
	if err != nil {
		return Found{}, err
	}
	return Found{Origin: name, UserData: data, UserDataName: name}, nil
}

func (h HTTP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return http.DefaultClient
}

// Redact hides a password in a URL's user info (fetch.Redact).
func Redact(raw string) string { return fetch.Redact(raw) }

// get fetches rawURL with retries (fetch.Get, bounded to maxUserData).
func get(ctx context.Context, c *http.Client, r Retry, rawURL string, header http.Header) ([]byte, int, error) {
	return fetch.Get(ctx, c, r, rawURL, header, maxUserData)
}

// getOptional fetches a value that may be absent: a 404 gives nil, nil.
func getOptional(ctx context.Context, c *http.Client, r Retry, rawURL string, header http.Header) ([]byte, error) {
	b, _, err := get(ctx, c, r, rawURL, header)
	if code, ok := statusCode(err); ok && code == http.StatusNotFound {
		return nil, nil
	}
	return b, err
}

func request(ctx context.Context, c *http.Client, r Retry, method, rawURL string, header http.Header) ([]byte, int, error) {
	return fetch.Request(ctx, c, r, method, rawURL, header, maxUserData)
}
