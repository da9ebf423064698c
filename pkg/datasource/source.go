package datasource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNotFound is returned (wrapped) by a Fetcher whose source is not present
// on this machine: no volume with its label, no metadata service. It is not
// a failure: the next source is tried.
var ErrNotFound = errors.New("not found")

// Fetcher fetches one datasource's raw bytes. Parsing is done by the pure
// functions of this package (ParseNoCloudMeta, ParseOpenStackMeta, …).
type Fetcher interface {
	Fetch(ctx context.Context) (Found, error)
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context) (Found, error)

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context) (Found, error) { return f(ctx) }

// Found is what one datasource returned.
type Found struct {
	// Origin names where it was found, e.g. "cidata:/dev/sr1",
	// "config-2:/dev/vdb", "ec2:http://169.254.169.254", "http://host/x.yaml".
	Origin string
	// UserData is the raw user-data (nil when the source had none) and
	// UserDataName the name it is loaded under, e.g. "cidata:/dev/sr1:user-data".
	UserData     []byte
	UserDataName string
	// Meta are the facts from the source's meta-data, and MetaName the name
	// of the generated source that carries them into the config.
	Meta     Meta
	MetaName string
}

// Meta are the facts a datasource's meta-data gives about this machine.
type Meta struct {
	InstanceID string   `json:"instance_id,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	PublicKeys []string `json:"public_keys,omitempty"`
}

// IsZero reports whether m holds no fact.
func (m Meta) IsZero() bool {
	return m.InstanceID == "" && m.Hostname == "" && len(m.PublicKeys) == 0
}

// Config renders the meta-data facts that feed the config as a cloud-config
// document: hostname and ssh_authorized_keys. It is loaded just before the
// same datasource's user-data, so user-data that sets them wins. It returns
// nil when there is nothing to set.
func (m Meta) Config() []byte {
	var b strings.Builder
	if m.Hostname != "" {
		fmt.Fprintf(&b, "hostname: %s\n", yamlString(m.Hostname))
	}
	if len(m.PublicKeys) > 0 {
		b.WriteString("ssh_authorized_keys:\n")
		for _, k := range m.PublicKeys {
			fmt.Fprintf(&b, "  - %s\n", yamlString(k))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return []byte("#cloud-config\n# generated from meta-data\n" + b.String())
}

// yamlString quotes s as a YAML double-quoted scalar. What YAML does not
// allow as it is (C0 and C1 controls, DEL, the byte-order mark, U+FFFE and
// U+FFFF) is escaped, and so are the line and paragraph separators, which
// a YAML 1.1 reader (yaml.v3) folds like a line break; bytes that are not
// UTF-8 become U+FFFD.
func yamlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// cleanKeys trims, drops empty and duplicate keys, keeping the first order.
// Bytes that are not UTF-8 (from a plain-text metadata value) become
// U+FFFD, as Meta.Config writes them.
func cleanKeys(keys []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		k = strings.TrimSpace(strings.ToValidUTF8(k, "\uFFFD"))
		if k == "" || strings.HasPrefix(k, "#") || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, k)
	}
	return out
}

// splitKeys cleans keys of which each may hold several, a line each.
func splitKeys(keys []string) []string {
	var lines []string
	for _, k := range keys {
		lines = append(lines, strings.Split(k, "\n")...)
	}
	return cleanKeys(lines)
}

// sortedValues returns m's values ordered by key, for maps of public keys.
func sortedValues(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]string, 0, len(m))
	for _, k := range names {
		out = append(out, m[k])
	}
	return out
}
