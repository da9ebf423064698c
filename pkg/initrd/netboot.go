package initrd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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

// Fetch downloads url to dst with retries (resuming with a Range request
// when the server allows it), printing a progress line every few seconds,
// and checks the SHA-256 digest when want is not empty.
func (s *Stage) Fetch(ctx context.Context, url, dst, want string) error {
	s.defaults()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	var lastErr error
	backoff := time.Second
	for attempt := 1; attempt <= fetchAttempts; attempt++ {
		if attempt > 1 {
			s.logf("download %s: attempt %d of %d failed: %v; retrying in %s", url, attempt-1, fetchAttempts, lastErr, backoff)
			s.Sleep(backoff)
			backoff *= 2
		}
		sum, n, err := s.fetchOnce(ctx, url, dst)
		if err != nil {
			lastErr = err
			var perm permanent
			if errors.As(err, &perm) {
				break
			}
			continue
		}
		got := hex.EncodeToString(sum)
		if want != "" && got != want {
			os.Remove(dst)
			return fmt.Errorf("netboot: %s (%d bytes) has sha256 %s, but keso.root_sha256 wants %s", url, n, got, want)
		}
		verified := "not verified: no keso.root_sha256"
		if want != "" {
			verified = "sha256 verified"
		}
		s.logf("downloaded %s: %d MiB, %s", url, n>>20, verified)
		return nil
	}
	return fmt.Errorf("netboot: download %s failed after %d attempts: %w", url, fetchAttempts, lastErr)
}

type permanent struct{ error }

// fetchClient bounds connecting and waiting for headers; the body may take
// as long as the link needs.
var fetchClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
	TLSHandshakeTimeout:   15 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
}}

func (s *Stage) fetchOnce(ctx context.Context, url, dst string) ([]byte, int64, error) {
	h := sha256.New()
	var have int64
	if f, err := os.Open(dst); err == nil {
		have, _ = io.Copy(h, f)
		f.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, permanent{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := fetchClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND
		s.logf("download %s: resuming at %d bytes", url, have)
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC
		h.Reset()
		have = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		os.Remove(dst)
		return nil, 0, fmt.Errorf("server refused to resume at %d bytes; starting over", have)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, 0, permanent{fmt.Errorf("GET %s: %s", url, resp.Status)}
	default:
		return nil, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.OpenFile(dst, flags, 0o644)
	if err != nil {
		return nil, 0, permanent{fmt.Errorf("open %s: %w", dst, err)}
	}
	defer f.Close()
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	pw := &progress{s: s, url: url, done: have, total: total, last: s.Now()}
	_, err = io.Copy(io.MultiWriter(f, hashWriter{h}, pw), resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("read body of %s after %d bytes: %w", url, pw.done, err)
	}
	if total >= 0 && pw.done != total {
		return nil, 0, fmt.Errorf("read body of %s: got %d of %d bytes", url, pw.done, total)
	}
	if err := f.Sync(); err != nil {
		return nil, 0, fmt.Errorf("write %s: %w", dst, err)
	}
	return h.Sum(nil), pw.done, nil
}

type hashWriter struct{ hash.Hash }

type progress struct {
	s           *Stage
	url         string
	done, total int64
	last        time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := p.s.Now(); now.Sub(p.last) >= 3*time.Second {
		p.last = now
		if p.total > 0 {
			p.s.logf("download %s: %d of %d MiB (%d%%)", p.url, p.done>>20, p.total>>20, p.done*100/p.total)
		} else {
			p.s.logf("download %s: %d MiB", p.url, p.done>>20)
		}
	}
	return len(b), nil
}
