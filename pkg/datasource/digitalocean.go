package datasource

import "context"

// DigitalOcean is the `digitalocean` datasource: the Droplet metadata
// service.
//
// The service is at 169.254.169.254 and needs no header; values are plain
// text under /metadata/v1/ (an unknown one is a 404). keso reads:
//
//   - hostname: the Droplet's name, as given when it was created (kept
//     whole). Every Droplet has one: it is the probe that decides whether
//     the service is there.
//   - id: the numeric Droplet id.
//   - public-keys: the SSH keys the Droplet was created with, one a line
//     (ParseKeyLines).
//   - user-data: the user-data, as given when the Droplet was created.
//
// BaseURL is DefaultIMDS on a node.
type DigitalOcean Service

// digitalOceanRoot is the service's tree under the base URL.
const digitalOceanRoot = "/metadata/v1/"

// Fetch reads the host name, Droplet id, SSH keys and user-data.
func (d DigitalOcean) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(DigitalOceanName, DefaultIMDS, Service(d), nil)
	return s.fetchValues(ctx, valueTree{
		hostname:   digitalOceanRoot + "hostname",
		instanceID: digitalOceanRoot + "id",
		userData:   digitalOceanRoot + "user-data",
		meta:       digitalOceanRoot,
		keys:       keysAt(digitalOceanRoot+"public-keys", keyLines),
	})
}
