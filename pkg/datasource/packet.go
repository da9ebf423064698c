package datasource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// DefaultPacket is the address of Equinix Metal's (formerly Packet's)
// metadata service; it was metadata.packet.net before.
const DefaultPacket = "https://metadata.platformequinix.com"

// Packet is the `packet` datasource (also `equinix`, `equinixmetal`): the
// Equinix Metal metadata service.
//
// The service is at a public name (BaseURL, DefaultPacket), over HTTPS
// verified against the system roots; it answers a server with that
// server's own data, found by the address the request comes from, and
// needs no header. keso reads:
//
//   - /metadata: the server as JSON (ParsePacketMeta): id, hostname (kept
//     whole) and ssh_keys, a list of OpenSSH public keys. Every server has
//     it: it is the probe that decides whether the service is there (from
//     anywhere else it is refused).
//   - /userdata: the user-data. A custom iPXE server's user-data may be
//     its iPXE script ("#!ipxe"), which is not for keso: it is skipped.
type Packet Service

// Equinix Metal's paths.
const (
	packetMeta     = "/metadata"
	packetUserData = "/userdata"
)

// Fetch reads the server's metadata, then its user-data.
func (p Packet) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(PacketName, DefaultPacket, Service(p), nil)
	meta, err := s.document(ctx, packetMeta, ParsePacketMeta)
	if err != nil {
		return Found{}, err
	}
	f, err := s.found(ctx, meta, packetMeta, packetUserData)
	if bytes.HasPrefix(f.UserData, []byte("#!ipxe")) {
		f.UserData, f.UserDataName = nil, ""
	}
	return f, err
}

// packetMetaJSON is the part of /metadata keso reads.
type packetMetaJSON struct {
	ID       string   `json:"id"`
	Hostname string   `json:"hostname"`
	SSHKeys  []string `json:"ssh_keys"`
}

// ParsePacketMeta parses Equinix Metal's /metadata: id is the instance id,
// hostname the host name, ssh_keys the SSH public keys. Other fields
// (network, storage, …) are ignored.
func ParsePacketMeta(b []byte) (Meta, error) {
	var m packetMetaJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("metadata: %w", err)
	}
	return Meta{InstanceID: strings.TrimSpace(m.ID), Hostname: strings.TrimSpace(m.Hostname), PublicKeys: splitKeys(m.SSHKeys)}, nil
}
