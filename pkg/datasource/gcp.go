package datasource

import (
	"context"
	"net/http"
	"strings"
)

// GCP is the `gcp` datasource: Google Compute Engine's metadata server.
//
// The server is at 169.254.169.254 (also named metadata.google.internal,
// which needs GCP's DNS; the address does not). Every request must carry
// the header "Metadata-Flavor: Google": the server refuses one without it
// (403) and marks its answers with the same header. Values are plain text
// under /computeMetadata/v1/; a key that is not set is a 404. keso reads:
//
//   - instance/hostname: the VM's FQDN ("vm-1.us-central1-a.c.proj.internal");
//     keso keeps the first label, as for EC2. Every VM has one: it is the
//     probe that decides whether the server is there.
//   - instance/id: the numeric instance id.
//   - SSH keys, one "user:key" a line (ParseGCPKeys): the instance's
//     instance/attributes/ssh-keys and legacy sshKeys, then the project's
//     project/attributes/ssh-keys and sshKeys, unless the instance sets
//     block-project-ssh-keys to TRUE or has legacy sshKeys of its own
//     (which block the project's keys).
//   - instance/attributes/user-data: the user-data, as cloud-init reads it.
//
// BaseURL is DefaultIMDS on a node.
type GCP Service

// gcpRoot is the metadata tree's root under the base URL.
const gcpRoot = "/computeMetadata/v1/"

// Fetch reads the host name, instance id, SSH keys and user-data.
func (g GCP) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(GCPName, DefaultIMDS, Service(g), http.Header{"Metadata-Flavor": {"Google"}})
	return s.fetchValues(ctx, valueTree{
		hostname:   gcpRoot + "instance/hostname",
		instanceID: gcpRoot + "instance/id",
		userData:   gcpRoot + "instance/attributes/user-data",
		meta:       gcpRoot + "instance/",
		keys:       gcpKeys,
		short:      true,
	})
}

// gcpKeys reads the instance's keys, then the project's unless blocked.
func gcpKeys(ctx context.Context, s metaService) ([]string, error) {
	var err error
	read := func(p string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = s.optional(ctx, gcpRoot+p)
		return b
	}
	keys := ParseGCPKeys(read("instance/attributes/ssh-keys"))
	legacy := ParseGCPKeys(read("instance/attributes/sshKeys"))
	block := strings.EqualFold(strings.TrimSpace(string(read("instance/attributes/block-project-ssh-keys"))), "true")
	keys = append(keys, legacy...)
	if !block && len(legacy) == 0 {
		keys = append(keys, ParseGCPKeys(read("project/attributes/ssh-keys"))...)
		keys = append(keys, ParseGCPKeys(read("project/attributes/sshKeys"))...)
	}
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// ParseGCPKeys parses a GCP ssh-keys (or sshKeys) metadata value: one key a
// line, each "USERNAME:KEY" ("alice:ssh-ed25519 AAAA… alice@host", or
// with gcloud's "google-ssh {…}" comment after the key). The user name is
// dropped: keso puts every key on its one user. A line without a user name
// (no ':', or a blank in what stands before it) is skipped.
func ParseGCPKeys(b []byte) []string {
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		user, key, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || user == "" || strings.ContainsAny(user, " \t") {
			continue
		}
		keys = append(keys, key)
	}
	return cleanKeys(keys)
}
