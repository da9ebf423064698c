package initrd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/netconf"
)

// Netboot limits.
const (
	linkWait      = 20 * time.Second
	dhcpTimeout   = 8 * time.Second
	dhcpAttempts  = 4
	fetchAttempts = 6
	NetbootFile   = "/run/keso/rootfs.squashfs"
	CABundle      = "/etc/ssl/certs/ca-certificates.crt" // where Go's TLS looks first on Linux
)

func (s *Stage) netbootRoot(ctx context.Context, plan Plan, info *Info) error {
	info.Mode, info.Root = ModeNetboot, plan.URL
	if strings.HasPrefix(plan.URL, "https://") {
		if _, err := os.Stat(s.path(CABundle)); err != nil {
			return fmt.Errorf("netboot: keso.root is https but the initrd has no CA bundle (%s): use http:// with keso.root_sha256=, or build the initrd with CA certificates", CABundle)
		}
	}
	link, err := s.upLink()
	if err != nil {
		return err
	}
	var lastErr error
	for i := 0; i < dhcpAttempts; i++ {
		lease, err := s.Host.DHCP(ctx, link, dhcpTimeout)
		if err == nil {
			info.Lease = link + " " + lease.Address
			s.logf("dhcp: %s is %s, router %s, dns %s", link, lease.Address, lease.Router, strings.Join(lease.DNS, " "))
			s.writeResolv(lease)
			lastErr = nil
			break
		}
		lastErr = err
		s.logf("dhcp attempt %d of %d on %s: %v", i+1, dhcpAttempts, link, err)
	}
	if lastErr != nil {
		return fmt.Errorf("netboot: no DHCPv4 lease on %s after %d attempts: %w", link, dhcpAttempts, lastErr)
	}
	dst := s.path(NetbootFile)
	if err := s.Fetch(ctx, plan.URL, dst, plan.SHA256); err != nil {
		return err
	}
	return s.loopMount(dst, info)
}

// upLink sets every link up and returns the first, by name, with a carrier.
func (s *Stage) upLink() (string, error) {
	deadline := s.Now().Add(linkWait)
	upped := map[string]bool{}
	for {
		links, err := s.Host.Links()
		if err != nil {
			return "", fmt.Errorf("netboot: %w", err)
		}
		sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
		var names []string
		for _, l := range links {
			if !upped[l.Name] {
				if err := s.Host.LinkUp(l.Name); err != nil {
					s.logf("netboot: %v", err)
				}
				upped[l.Name] = true
			}
			names = append(names, l.Name)
		}
		for _, l := range links {
			if l.Carrier {
				s.logf("netboot: using %s (first link with a carrier)", l.Name)
				return l.Name, nil
			}
		}
		if !s.Now().Before(deadline) {
			if len(names) == 0 {
				return "", fmt.Errorf("netboot: looked for a network link with a carrier for %s; found no network links (is the NIC driver, e.g. virtio_net, in the initrd?)", linkWait)
			}
			return "", fmt.Errorf("netboot: looked for a network link with a carrier for %s; found %s, none with a carrier (cable?)", linkWait, strings.Join(names, ", "))
		}
		s.Sleep(s.Poll)
	}
}

// Fetch downloads url to dst with pkg/fetch's Downloader (retries with
// backoff, fetchAttempts in a row without progress at most; a broken
// transfer resumes with a Range request), printing a progress line every
// few seconds, and checks the SHA-256 digest when want is not empty.
func (s *Stage) Fetch(ctx context.Context, url, dst, want string) error {
	s.defaults()
	hostFS := host.FS{Root: "/"} // dst is a path on this machine, not a node path
	if err := hostFS.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	last := s.Now()
	d := &fetch.Downloader{
		Client:   fetchClient,
		Attempts: fetchAttempts,
		Sleep: func(ctx context.Context, d time.Duration) error {
			s.Sleep(d)
			return ctx.Err()
		},
		Logf: s.logf,
		Progress: func(done, total int64) {
			if now := s.Now(); now.Sub(last) >= 3*time.Second {
				last = now
				if total > 0 {
					s.logf("download %s: %d of %d MiB (%d%%)", url, done>>20, total>>20, done*100/total)
				} else {
					s.logf("download %s: %d MiB", url, done>>20)
				}
			}
		},
	}
	res, err := d.Download(ctx, url, dst)
	if err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	if want != "" && res.SHA256 != want {
		hostFS.Remove(dst)
		return fmt.Errorf("netboot: %s (%d bytes) has sha256 %s, but keso.root_sha256 wants %s", url, res.Bytes, res.SHA256, want)
	}
	verified := "not verified: no keso.root_sha256"
	if want != "" {
		verified = "sha256 verified"
	}
	s.logf("downloaded %s: %d MiB, %s", url, res.Bytes>>20, verified)
	return nil
}

// fetchClient bounds connecting and waiting for headers; the body may take
// as long as the link needs.
var fetchClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
	TLSHandshakeTimeout:   15 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
}}

// writeResolv writes the lease's name servers to /etc/resolv.conf, so a
// keso.root URL may name its server by host name.
func (s *Stage) writeResolv(l *host.Lease) {
	rc := netconf.RenderResolv(l.DNS, l.Search)
	if rc == "" {
		return
	}
	if err := s.fs().WriteFileAtomic(netconf.ResolvConf, []byte(rc), 0o644); err != nil {
		s.logf("netboot: %v", err)
	}
}
