package datasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// DefaultScaleway is the address of Scaleway's instance metadata service.
const DefaultScaleway = "http://169.254.42.42"

// Scaleway is the `scaleway` datasource: Scaleway's instance metadata
// service.
//
// The service is at 169.254.42.42 (BaseURL; fd00:42::42 over IPv6) and
// needs no header. keso reads:
//
//   - /conf?format=json: the instance as JSON (ParseScalewayConf):
//     hostname (kept whole), id, and ssh_public_keys, a list of objects
//     whose "key" is an OpenSSH public key. Every instance has it: it is
//     the probe that decides whether the service is there.
//   - /user_data/cloud-init: the user-data (the cloud-init key of the
//     instance's user data store). Scaleway answers under /user_data only
//     requests that come from a local port below 1024, so this request goes
//     over connections that Dial opens (PrivilegedDial: keso's agent runs
//     as root).
type Scaleway struct {
	// Service's Client reads /conf; BaseURL is DefaultScaleway on a node.
	Service
	// Dial opens the connections for /user_data; nil is PrivilegedDial.
	// Tests, which need not run as root, pass a plain dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Scaleway's paths.
const (
	scalewayConf     = "/conf?format=json"
	scalewayUserData = "/user_data/cloud-init"
)

// Fetch reads the instance's conf, then its user-data from a privileged port.
func (sc Scaleway) Fetch(ctx context.Context) (Found, error) {
	s := newMetaService(ScalewayName, DefaultScaleway, sc.Service, nil)
	meta, err := s.document(ctx, scalewayConf, ParseScalewayConf)
	if err != nil {
		return Found{}, err
	}
	dial := sc.Dial
	if dial == nil {
		dial = PrivilegedDial
	}
	tr := &http.Transport{DialContext: dial}
	defer tr.CloseIdleConnections()
	ud := s
	ud.client = &http.Client{Transport: tr}
	return ud.found(ctx, meta, scalewayConf, scalewayUserData)
}

// scalewayConfJSON is the part of /conf?format=json keso reads.
type scalewayConfJSON struct {
	ID            string `json:"id"`
	Hostname      string `json:"hostname"`
	SSHPublicKeys []struct {
		Key string `json:"key"`
	} `json:"ssh_public_keys"`
}

// ParseScalewayConf parses Scaleway's /conf?format=json: id is the
// instance id, hostname the host name, and each ssh_public_keys entry's
// key an SSH public key. Other fields are ignored.
func ParseScalewayConf(b []byte) (Meta, error) {
	var c scalewayConfJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return Meta{}, fmt.Errorf("conf: %w", err)
	}
	var keys []string
	for _, k := range c.SSHPublicKeys {
		keys = append(keys, k.Key)
	}
	return Meta{InstanceID: strings.TrimSpace(c.ID), Hostname: strings.TrimSpace(c.Hostname), PublicKeys: splitKeys(keys)}, nil
}

// privilegedPorts are the local ports PrivilegedDial tries, in order.
var privilegedPorts = func() []int {
	var ports []int
	for p := 1023; p >= 512; p-- {
		ports = append(ports, p)
	}
	return ports
}()

// PrivilegedDial connects to addr from a local port below 1024, as
// Scaleway's metadata service wants for user data. It tries the ports from
// 1023 down to 512 and takes the first it can bind: a port in use (or
// whose last connection is in TIME_WAIT) is skipped. Binding such a port
// needs root (CAP_NET_BIND_SERVICE), which keso's agent has.
func PrivilegedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialFrom(ctx, network, addr, privilegedPorts)
}

// dialFrom connects to addr from the first of ports it can bind.
func dialFrom(ctx context.Context, network, addr string, ports []int) (net.Conn, error) {
	var last error
	for _, port := range ports {
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("dial %s from local port %d: %w (a port below 1024 needs root)", addr, port, err)
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("dial %s: no free local port among %d tried: %w", addr, len(ports), last)
}
