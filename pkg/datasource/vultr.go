package datasource

import "context"

// Vultr is the `vultr` datasource: Vultr's instance metadata service.
//
// The service is at 169.254.169.254 and needs no header; values are plain
// text under /v1/ (an unknown one is a 404). keso reads:
//
//   - v1/hostname: the instance's host name, as given when it was created
//     (kept whole). Every instance has one: it is the probe that decides
//     whether the service is there.
//   - v1/instanceid: the instance id.
//   - v1/public-keys: the SSH keys the instance was created with, one a
//     line (ParseKeyLines).
//   - latest/user-data: the user-data, which Vultr keeps base64-encoded
//     and serves decoded.
//
// BaseURL is DefaultIMDS on a node.
type Vultr Service

// Fetch reads the host name, instance id, SSH keys and user-data.
func (v Vultr) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(VultrName, DefaultIMDS, Service(v), nil)
	return s.fetchValues(ctx, valueTree{
		hostname:   "/v1/hostname",
		instanceID: "/v1/instanceid",
		userData:   "/latest/user-data",
		meta:       "/v1/",
		keys:       keysAt("/v1/public-keys", keyLines),
	})
}
