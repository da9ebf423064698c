package datasource

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Service is where a cloud provider's datasource finds the provider's
// metadata service, and how long it waits for it. The datasources GCP,
// Hetzner, DigitalOcean, Vultr, Scaleway and Packet are Services.
type Service struct {
	// BaseURL is the service's address (the provider's when empty);
	// tests point it at httptest.
	BaseURL string
	Client  *http.Client // nil: http.DefaultClient
	// Retry bounds the wait for the service (default: 30 s, 2 s per
	// attempt, as for EC2).
	Retry Retry
}

// metaService is one cloud provider's metadata service as its datasource
// reads it (gcp, hetzner, digitalocean, vultr, scaleway, packet). Every
// request goes through get (pkg/fetch: retried with backoff within the
// Retry budget, bodies bounded to maxUserData) and every error names the
// datasource and the URL.
type metaService struct {
	name   string // the datasource, "gcp": in errors and in the origin
	base   string // without a trailing slash
	client *http.Client
	retry  Retry
	header http.Header // sent with every request (GCP's Metadata-Flavor)
}

// newMetaService fills in metadataService's defaults (the EC2 budget: 30 s,
// 2 s per attempt); an empty base URL is def.
func newMetaService(name, def string, svc Service, header http.Header) metaService {
	base := svc.BaseURL
	if strings.TrimSpace(base) == "" {
		base = def
	}
	base, c, r := metadataService(base, svc.Client, svc.Retry)
	return metaService{name: name, base: base, client: c, retry: r, header: header}
}

func (s metaService) url(p string) string { return s.base + p }

// probe GETs p, a value every instance of the provider has, to learn
// whether the service is there at all. Nothing answering within the budget
// (no route, refused, timeouts), or an answer that says this is not the
// provider's service (a 4xx: another cloud's service on the same address),
// is ErrNotFound, and the next datasource is tried. A service that answers
// with server errors until the budget is spent is an error.
func (s metaService) probe(ctx context.Context, p string) ([]byte, error) {
	b, _, err := get(ctx, s.client, s.retry, s.url(p), s.header)
	if err == nil {
		return b, nil
	}
	code, ok := statusCode(err)
	if ok && (code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests) {
		return nil, fmt.Errorf("%s metadata service at %s: %w", s.name, s.base, err)
	}
	return nil, fmt.Errorf("no %s metadata service at %s: %v: %w", s.name, s.base, err, ErrNotFound)
}

// document reads the document that holds the instance's meta-data (as
// the probe) and parses it (Scaleway, Equinix Metal).
func (s metaService) document(ctx context.Context, p string, parse func([]byte) (Meta, error)) (Meta, error) {
	b, err := s.probe(ctx, p)
	if err != nil {
		return Meta{}, err
	}
	m, err := parse(b)
	if err != nil {
		return Meta{}, s.parseError(p, err)
	}
	return m, nil
}

// optional GETs a value that may be absent: a 404 gives nil, nil.
func (s metaService) optional(ctx context.Context, p string) ([]byte, error) {
	b, err := getOptional(ctx, s.client, s.retry, s.url(p), s.header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return b, nil
}

// parseError names the datasource and the URL of a value that does not parse.
func (s metaService) parseError(p string, err error) error {
	return fmt.Errorf("%s: parse %s: %w", s.name, s.url(p), err)
}

// found reads the user-data at udPath and returns it with meta (named
// after metaPath). A 404 or an empty body is no user-data. Any other
// failure is an error and nothing is returned: a node never boots with
// the meta-data of a service whose user-data it could not read.
func (s metaService) found(ctx context.Context, meta Meta, metaPath, udPath string) (Found, error) {
	ud, err := s.optional(ctx, udPath)
	if err != nil {
		return Found{}, err
	}
	f := Found{Origin: s.name + ":" + s.base}
	if len(ud) > 0 {
		f.UserData, f.UserDataName = ud, s.url(udPath)
	}
	// Plain-text values may hold anything: what is reported is what
	// Meta.Config writes (valid UTF-8).
	meta.InstanceID = strings.TrimSpace(strings.ToValidUTF8(meta.InstanceID, "\uFFFD"))
	meta.Hostname = strings.TrimSpace(strings.ToValidUTF8(meta.Hostname, "\uFFFD"))
	meta.PublicKeys = cleanKeys(meta.PublicKeys)
	if !meta.IsZero() {
		f.Meta, f.MetaName = meta, s.url(metaPath)
	}
	return f, nil
}

// valueTree is where a metadata service that serves each fact as a plain
// value of its own (GCP, Hetzner, DigitalOcean, Vultr) keeps the facts
// keso reads: paths under its base URL.
type valueTree struct {
	// hostname is the probe: every instance has one.
	hostname, instanceID, userData string
	// meta names the meta-data facts in diagnostics.
	meta string
	// keys reads the SSH public keys.
	keys func(ctx context.Context, s metaService) ([]string, error)
	// short takes the host name's first label (a name the provider made
	// up, such as GCP's "vm-1.us-central1-a.c.project.internal").
	short bool
}

// fetchValues reads the host name (the probe), the instance id, the keys
// and the user-data; it returns nothing unless all of them could be read.
func (s metaService) fetchValues(ctx context.Context, t valueTree) (Found, error) {
	host, err := s.probe(ctx, t.hostname)
	if err != nil {
		return Found{}, err
	}
	id, err := s.optional(ctx, t.instanceID)
	if err != nil {
		return Found{}, err
	}
	keys, err := t.keys(ctx, s)
	if err != nil {
		return Found{}, err
	}
	meta := Meta{InstanceID: string(id), Hostname: string(host), PublicKeys: keys}
	if t.short {
		meta.Hostname = shortHostname(meta.Hostname)
	}
	return s.found(ctx, meta, t.meta, t.userData)
}

// keysAt reads the keys at p with parse; a 404 is no keys.
func keysAt(p string, parse func([]byte) ([]string, error)) func(context.Context, metaService) ([]string, error) {
	return func(ctx context.Context, s metaService) ([]string, error) {
		b, err := s.optional(ctx, p)
		if err != nil || b == nil {
			return nil, err
		}
		keys, err := parse(b)
		if err != nil {
			return nil, s.parseError(p, err)
		}
		return keys, nil
	}
}

// ParseKeyLines parses a list of SSH public keys, one a line (DigitalOcean's
// and Vultr's public-keys). Blank lines and # comments are skipped.
func ParseKeyLines(b []byte) []string {
	return cleanKeys(strings.Split(string(b), "\n"))
}

// keyLines is ParseKeyLines for keysAt.
func keyLines(b []byte) ([]string, error) { return ParseKeyLines(b), nil }
