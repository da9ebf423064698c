package datasource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// Hetzner is the `hetzner` datasource: Hetzner Cloud's metadata service.
//
// The service is at 169.254.169.254 and needs no header; values are plain
// text under /hetzner/v1/. keso reads:
//
//   - metadata/hostname: the server's name, as given when it was created
//     (kept whole). Every server has one: it is the probe that decides
//     whether the service is there.
//   - metadata/instance-id: the numeric server id.
//   - metadata/public-keys: the SSH keys the server was created with, a
//     JSON list of strings (ParseHetznerKeys).
//   - userdata: the user-data (empty when none was given).
//
// BaseURL is DefaultIMDS on a node.
type Hetzner Service

// hetznerRoot is the service's tree under the base URL.
const hetznerRoot = "/hetzner/v1/"

// Fetch reads the host name, instance id, SSH keys and user-data.
func (h Hetzner) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(HetznerName, DefaultIMDS, Service(h), nil)
	return s.fetchValues(ctx, valueTree{
		hostname:   hetznerRoot + "metadata/hostname",
		instanceID: hetznerRoot + "metadata/instance-id",
		userData:   hetznerRoot + "userdata",
		meta:       hetznerRoot + "metadata",
		keys:       keysAt(hetznerRoot+"metadata/public-keys", ParseHetznerKeys),
	})
}

// ParseHetznerKeys parses Hetzner's metadata/public-keys: a JSON list of
// OpenSSH public keys. An empty body is no keys.
func ParseHetznerKeys(b []byte) ([]string, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var keys []string
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("public-keys: want a JSON list of keys: %w", err)
	}
	return splitKeys(keys), nil
}
