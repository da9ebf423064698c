package datasource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/fetch"
)

// DefaultIMDS is the link-local address of EC2-style instance metadata
// services (AWS, OpenStack's EC2 API, and many smaller clouds).
const DefaultIMDS = "http://169.254.169.254"

// EC2 is the `aws`/`ec2` datasource: the EC2 instance metadata service.
// It asks for an IMDSv2 session token first (PUT /latest/api/token) and
// falls back to IMDSv1 (no token) when the service refuses one.
type EC2 struct {
	// BaseURL is DefaultIMDS on a node; tests point it at httptest.
	BaseURL string
	Client  *http.Client
	// Retry bounds the wait for the service to answer at all (default
	// budget 30 s: IMDS is only probed when data_sources asks for it).
	Retry Retry
}

// IMDS headers.
const (
	imdsTokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsTokenHeader    = "X-aws-ec2-metadata-token"
)

// metadataService fills in the defaults shared by the link-local metadata
// services (EC2 IMDS, OpenStack): the base URL, the HTTP client, and a
// retry budget of 30 s with 2 s per attempt.
func metadataService(base string, c *http.Client, r Retry) (string, *http.Client, Retry) {
	base = strings.TrimRight(base, "/")
	if base == "" {
		base = DefaultIMDS
	}
	if c == nil {
		c = http.DefaultClient
	}
	if r.Budget <= 0 {
		r.Budget = 30 * time.Second
	}
	if r.AttemptTimeout <= 0 {
		r.AttemptTimeout = 2 * time.Second
	}
	return base, c, r
}

// Fetch reads user-data and the meta-data keso uses (instance-id,
// local-hostname, public-keys).
func (e EC2) Fetch(ctx context.Context) (Found, error) {
	base, c, r := metadataService(e.BaseURL, e.Client, e.Retry)
	origin := "ec2:" + base
	// IMDSv2: PUT a token request. A service without v2 answers 403, 404
	// or 405; then every GET goes without a token (v1).
	header := http.Header{}
	tok, _, err := request(ctx, c, r, http.MethodPut, base+"/latest/api/token",
		http.Header{imdsTokenTTLHeader: {"21600"}})
	switch {
	case err == nil && len(tok) > 0:
		header.Set(imdsTokenHeader, strings.TrimSpace(string(tok)))
	case isStatus(err):
		// v1 fallback
	case err != nil:
		return Found{}, fmt.Errorf("no EC2 metadata service at %s: %v: %w", base, err, ErrNotFound)
	}
	getOpt := func(p string) ([]byte, error) { return getOptional(ctx, c, r, base+p, header) }
	found := Found{Origin: origin}
	var errs []error
	ud, err := getOpt("/latest/user-data")
	if err != nil {
		return Found{}, fmt.Errorf("%s: user-data: %w", origin, err)
	}
	if ud != nil {
		found.UserData, found.UserDataName = ud, base+"/latest/user-data"
	}
	var meta Meta
	for _, f := range []struct {
		path string
		dst  *string
	}{
		{"/latest/meta-data/instance-id", &meta.InstanceID},
		{"/latest/meta-data/local-hostname", &meta.Hostname},
	} {
		b, err := getOpt(f.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	meta.Hostname = shortHostname(meta.Hostname)
	// public-keys/ lists "0=name" lines; each key is at N/openssh-key.
	idx, err := getOpt("/latest/meta-data/public-keys/")
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ParseEC2KeyIndex(idx) {
		b, err := getOpt("/latest/meta-data/public-keys/" + id + "/openssh-key")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		meta.PublicKeys = append(meta.PublicKeys, strings.Split(string(b), "\n")...)
	}
	meta.PublicKeys = cleanKeys(meta.PublicKeys)
	if !meta.IsZero() {
		found.Meta, found.MetaName = meta, base+"/latest/meta-data"
	}
	return found, errors.Join(errs...)
}

// ParseEC2KeyIndex parses the listing at /latest/meta-data/public-keys/
// ("0=my-key\n1=other") into the indexes to fetch.
func ParseEC2KeyIndex(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, _, _ := strings.Cut(line, "=")
		id = strings.TrimSuffix(id, "/")
		if id != "" && strings.Trim(id, "0123456789") == "" {
			out = append(out, id)
		}
	}
	return out
}

func statusCode(err error) (int, bool) {
	var se fetch.StatusError
	if errors.As(err, &se) {
		return se.Code, true
	}
	return 0, false
}

func isStatus(err error) bool { _, ok := statusCode(err); return ok }
