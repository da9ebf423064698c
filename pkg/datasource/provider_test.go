package datasource

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

// fakeMetadata answers as a cloud provider's metadata service does: the
// paths in files are served from testdata (hand-written from the
// provider's documented formats), anything else is a 404.
type fakeMetadata struct {
	// files maps a URL path (with its query, if any) to a file under testdata.
	files map[string]string
	// need are headers every request must carry, or it is refused with 403
	// (GCP's Metadata-Flavor: Google); answer are headers on every answer.
	need, answer http.Header
	// special answers a URL path otherwise (the bad cases).
	special map[string]http.HandlerFunc
	// privileged is a path prefix answered only to requests from a local
	// port below 1024 (Scaleway's /user_data), others get 403.
	privileged string
	// requests counts the requests, refused those refused for a header.
	requests, refused atomic.Int32
}

func (s *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	for k, v := range s.answer {
		w.Header()[k] = v
	}
	for k := range s.need {
		if r.Header.Get(k) != s.need.Get(k) {
			s.refused.Add(1)
			http.Error(w, "Missing "+k+" header.", http.StatusForbidden)
			return
		}
	}
	if s.privileged != "" && strings.HasPrefix(r.URL.Path, s.privileged) {
		_, port, _ := net.SplitHostPort(r.RemoteAddr)
		if p, err := strconv.Atoi(port); err != nil || p >= 1024 {
			s.refused.Add(1)
			http.Error(w, "source port must be below 1024", http.StatusForbidden)
			return
		}
	}
	key := r.URL.Path
	if r.URL.RawQuery != "" {
		key += "?" + r.URL.RawQuery
	}
	if h, ok := s.special[key]; ok {
		h(w, r)
		return
	}
	name, ok := s.files[key]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

// Bad answers.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

func body(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(s)) }
}

// hang never answers (until the client gives up).
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// huge sends one byte more than any source may have.
func huge(w http.ResponseWriter, r *http.Request) {
	chunk := bytes.Repeat([]byte("#"), 1<<20)
	for n := int64(0); n <= maxUserData; n += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// providerCase is one provider's service as the table tests drive it.
type providerCase struct {
	name    string
	fetcher func(base string, r Retry) Fetcher
	files   map[string]string
	// need and answer are the headers the service wants and gives.
	need, answer http.Header
	// probe is the value that tells whether the service is there;
	// userData the user-data's path; parsed a structured value whose
	// garbage must be an error ("" when all values are plain text).
	probe, userData, parsed string
}

func providerCases() []providerCase {
	gcp := "/computeMetadata/v1/"
	return []providerCase{
		{
			name:    GCPName,
			fetcher: func(base string, r Retry) Fetcher { return GCP{BaseURL: base, Retry: r} },
			files: map[string]string{
				gcp + "instance/hostname":             "gcp/hostname",
				gcp + "instance/id":                   "gcp/id",
				gcp + "instance/attributes/ssh-keys":  "gcp/instance-ssh-keys",
				gcp + "project/attributes/ssh-keys":   "gcp/project-ssh-keys",
				gcp + "instance/attributes/user-data": "gcp/user-data",
			},
			need:     http.Header{"Metadata-Flavor": {"Google"}},
			answer:   http.Header{"Metadata-Flavor": {"Google"}},
			probe:    gcp + "instance/hostname",
			userData: gcp + "instance/attributes/user-data",
		},
		{
			name:    HetznerName,
			fetcher: func(base string, r Retry) Fetcher { return Hetzner{BaseURL: base, Retry: r} },
			files: map[string]string{
				"/hetzner/v1/metadata/hostname":    "hetzner/hostname",
				"/hetzner/v1/metadata/instance-id": "hetzner/instance-id",
				"/hetzner/v1/metadata/public-keys": "hetzner/public-keys",
				"/hetzner/v1/userdata":             "hetzner/userdata",
			},
			probe:    "/hetzner/v1/metadata/hostname",
			userData: "/hetzner/v1/userdata",
			parsed:   "/hetzner/v1/metadata/public-keys",
		},
		{
			name:    DigitalOceanName,
			fetcher: func(base string, r Retry) Fetcher { return DigitalOcean{BaseURL: base, Retry: r} },
			files: map[string]string{
				"/metadata/v1/hostname":    "digitalocean/hostname",
				"/metadata/v1/id":          "digitalocean/id",
				"/metadata/v1/public-keys": "digitalocean/public-keys",
				"/metadata/v1/user-data":   "digitalocean/user-data",
			},
			probe:    "/metadata/v1/hostname",
			userData: "/metadata/v1/user-data",
		},
		{
			name:    VultrName,
			fetcher: func(base string, r Retry) Fetcher { return Vultr{BaseURL: base, Retry: r} },
			files: map[string]string{
				"/v1/hostname":      "vultr/hostname",
				"/v1/instanceid":    "vultr/instanceid",
				"/v1/public-keys":   "vultr/public-keys",
				"/latest/user-data": "vultr/user-data",
			},
			probe:    "/v1/hostname",
			userData: "/latest/user-data",
		},
		{
			name: ScalewayName,
			fetcher: func(base string, r Retry) Fetcher {
				// Any local port: the privileged one has a test of its own.
				return Scaleway{Service: Service{BaseURL: base, Retry: r}, Dial: (&net.Dialer{}).DialContext}
			},
			files: map[string]string{
				"/conf?format=json":     "scaleway/conf.json",
				"/user_data/cloud-init": "scaleway/user_data-cloud-init",
			},
			probe:    "/conf?format=json",
			userData: "/user_data/cloud-init",
			parsed:   "/conf?format=json",
		},
		{
			name:    PacketName,
			fetcher: func(base string, r Retry) Fetcher { return Packet{BaseURL: base, Retry: r} },
			files: map[string]string{
				"/metadata": "packet/metadata.json",
				"/userdata": "packet/userdata",
			},
			probe:    "/metadata",
			userData: "/userdata",
			parsed:   "/metadata",
		},
	}
}

// slept is the time a fake clock was made to wait.
func (c *fakeClock) slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for _, s := range c.sleeps {
		d += s
	}
	return d
}

// TestProviders: each provider's fetcher against a server that answers as
// the provider's does: what it finds, the headers it sends, and every bad
// answer: no user-data, server errors, a value that never comes, garbage,
// a body over the size cap, another cloud's service, no service at all.
func TestProviders(t *testing.T) {
	const budget = 30 * time.Second
	for _, pc := range providerCases() {
		t.Run(pc.name, func(t *testing.T) {
			// start serves pc with the special answers; the returned fetch
			// runs the fetcher on a fake clock with the EC2 budget.
			start := func(t *testing.T, special map[string]http.HandlerFunc) (*fakeMetadata, string) {
				srv := &fakeMetadata{files: pc.files, need: pc.need, answer: pc.answer, special: special}
				hs := httptest.NewServer(srv)
				t.Cleanup(hs.Close)
				return srv, hs.URL
			}
			fetch := func(base string, attempt time.Duration) (Found, error, *fakeClock) {
				clk := newFakeClock()
				f, err := pc.fetcher(base, clk.retry(budget, attempt)).Fetch(context.Background())
				return f, err, clk
			}
			// failed checks a fetch that must fail: nothing found, not
			// ErrNotFound (unless notFound), within the budget, and an
			// error that says where.
			failed := func(t *testing.T, got Found, err error, clk *fakeClock, notFound bool, says ...string) {
				t.Helper()
				if err == nil {
					t.Fatalf("Fetch = %+v, nil; want an error", got)
				}
				t.Logf("error: %v", err)
				if !reflect.DeepEqual(got, Found{}) {
					t.Errorf("Fetch returned %+v with error %v; want nothing", got, err)
				}
				if errors.Is(err, ErrNotFound) != notFound {
					t.Errorf("Fetch error %v: ErrNotFound is %v, want %v", err, !notFound, notFound)
				}
				if d := clk.slept(); d > budget {
					t.Errorf("waited %s, more than the budget %s", d, budget)
				}
				for _, s := range append([]string{pc.name}, says...) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
			}

			t.Run("found", func(t *testing.T) {
				srv, base := start(t, nil)
				got, err, _ := fetch(base, time.Second)
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				golden(t, pc.name+"/found.golden.json", viewFound(got, base))
				if n := srv.refused.Load(); n != 0 {
					t.Errorf("%d of %d requests lacked the headers %v", n, srv.requests.Load(), pc.need)
				}
				if len(pc.need) > 0 {
					// The fake refuses what the provider refuses.
					resp, err := http.Get(base + pc.probe)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("a request without %v got %s, want 403", pc.need, resp.Status)
					}
				}
			})
			t.Run("no-user-data", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.userData: status(http.StatusNotFound)})
				got, err, _ := fetch(base, time.Second)
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if got.UserData != nil || got.UserDataName != "" || got.Meta.IsZero() || got.Origin == "" {
					t.Errorf("Fetch = %+v; want the meta-data and no user-data", got)
				}
			})
			t.Run("empty-user-data", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.userData: body("")})
				got, err, _ := fetch(base, time.Second)
				if err != nil || got.UserData != nil || got.Meta.IsZero() {
					t.Errorf("Fetch = %+v, %v; want the meta-data and no user-data", got, err)
				}
			})
			t.Run("user-data-500", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.userData: status(http.StatusInternalServerError)})
				got, err, clk := fetch(base, time.Second)
				failed(t, got, err, clk, false, base+pc.userData, "500")
				if len(clk.sleeps) == 0 {
					t.Errorf("a 500 was not retried")
				}
			})
			t.Run("user-data-hangs", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.userData: hang})
				began := time.Now()
				got, err, clk := fetch(base, 50*time.Millisecond)
				failed(t, got, err, clk, false, base+pc.userData, "gave up")
				if d := time.Since(began); d > 5*time.Second {
					t.Errorf("took %s; each attempt should stop at its 50ms timeout", d)
				}
			})
			t.Run("user-data-huge", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.userData: huge})
				got, err, clk := fetch(base, 10*time.Second)
				failed(t, got, err, clk, false, base+pc.userData, "larger than 16 MiB")
			})
			if pc.parsed != "" { // a provider whose every value is plain text parses nothing
				t.Run("garbage", func(t *testing.T) {
					_, base := start(t, map[string]http.HandlerFunc{pc.parsed: body("<html><body>Moved</body></html>")})
					got, err, clk := fetch(base, time.Second)
					failed(t, got, err, clk, false, "parse "+base+pc.parsed)
				})
			}
			t.Run("another-cloud", func(t *testing.T) {
				// Another provider's service on the same address: 404.
				_, base := start(t, map[string]http.HandlerFunc{pc.probe: status(http.StatusNotFound)})
				got, err, clk := fetch(base, time.Second)
				failed(t, got, err, clk, true, base)
			})
			t.Run("probe-500", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.probe: status(http.StatusServiceUnavailable)})
				got, err, clk := fetch(base, time.Second)
				failed(t, got, err, clk, false, base+pc.probe, "503")
			})
			t.Run("probe-hangs", func(t *testing.T) {
				_, base := start(t, map[string]http.HandlerFunc{pc.probe: hang})
				began := time.Now()
				got, err, clk := fetch(base, 50*time.Millisecond)
				failed(t, got, err, clk, true, base)
				if d := time.Since(began); d > 5*time.Second {
					t.Errorf("took %s; each attempt should stop at its 50ms timeout", d)
				}
			})
			t.Run("absent", func(t *testing.T) {
				hs := httptest.NewServer(http.NotFoundHandler())
				base := hs.URL
				hs.Close() // nothing listens there
				got, err, clk := fetch(base, 100*time.Millisecond)
				failed(t, got, err, clk, true, base)
			})
		})
	}
}

// TestGCPProjectKeys: the project's keys are added unless the instance
// blocks them (block-project-ssh-keys, or legacy sshKeys of its own).
func TestGCPProjectKeys(t *testing.T) {
	const (
		root = "/computeMetadata/v1/"
		ops  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcpOps ops@laptop"
		dep  = `ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDeploy google-ssh {"userName":"deploy@example.com","expireOn":"2030-01-01T00:00:00+0000"}`
		adm  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcpAdmin admin@example.com"
		leg  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcpLegacy legacy"
	)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"instance-and-project", map[string]string{
			root + "instance/attributes/ssh-keys": "gcp/instance-ssh-keys",
			root + "project/attributes/ssh-keys":  "gcp/project-ssh-keys",
		}, []string{ops, dep, adm}},
		{"project-legacy-only", map[string]string{
			root + "project/attributes/sshKeys": "gcp/project-ssh-keys",
		}, []string{adm, ops}},
		{"blocked", map[string]string{
			root + "instance/attributes/ssh-keys":               "gcp/instance-ssh-keys",
			root + "instance/attributes/block-project-ssh-keys": "gcp/block-project-ssh-keys",
			root + "project/attributes/ssh-keys":                "gcp/project-ssh-keys",
		}, []string{ops, dep}},
		{"instance-legacy-blocks", map[string]string{
			root + "instance/attributes/sshKeys": "gcp/instance-sshKeys",
			root + "project/attributes/ssh-keys": "gcp/project-ssh-keys",
		}, []string{leg}},
		{"none", map[string]string{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.files[root+"instance/hostname"] = "gcp/hostname"
			hs := httptest.NewServer(&fakeMetadata{files: tc.files, need: http.Header{"Metadata-Flavor": {"Google"}}})
			defer hs.Close()
			got, err := GCP{BaseURL: hs.URL, Retry: newFakeClock().retry(30*time.Second, time.Second)}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !reflect.DeepEqual(got.Meta.PublicKeys, tc.want) {
				t.Errorf("keys:\n got %q\nwant %q", got.Meta.PublicKeys, tc.want)
			}
		})
	}
}

// TestScalewayPrivilegedPort: by default, user_data is asked from a local
// port below 1024, which Scaleway's service wants (the fake refuses
// others, as Scaleway does); /conf is not.
func TestScalewayPrivilegedPort(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: binding a port below 1024 needs root")
	}
	srv := &fakeMetadata{files: map[string]string{
		"/conf?format=json":     "scaleway/conf.json",
		"/user_data/cloud-init": "scaleway/user_data-cloud-init",
	}, privileged: "/user_data"}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	retry := newFakeClock().retry(30*time.Second, time.Second)
	got, err := Scaleway{Service: Service{BaseURL: hs.URL, Retry: retry}}.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if srv.refused.Load() != 0 || !strings.Contains(string(got.UserData), "cloud: scaleway") {
		t.Errorf("Fetch = %+v with %d requests refused; want the user-data from a port below 1024", got, srv.refused.Load())
	}
	// With a plain dialer the fake refuses user_data: the fetch fails whole.
	got, err = Scaleway{Service: Service{BaseURL: hs.URL, Retry: retry}, Dial: (&net.Dialer{}).DialContext}.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "403") || got.Origin != "" {
		t.Errorf("Fetch from an ordinary port = %+v, %v; want a 403 error and nothing found", got, err)
	}
}

// TestDialFrom: a local port that is taken is skipped for the next.
func TestDialFrom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	busy, err := net.Listen("tcp", ":0") // holds its port on every address
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	c, err := dialFrom(context.Background(), "tcp", ln.Addr().String(), []int{busyPort, freePort})
	if err != nil {
		t.Fatalf("dialFrom: %v", err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).Port; got != freePort {
		t.Errorf("dialed from port %d, want %d (port %d is taken)", got, freePort, busyPort)
	}
	if _, err := dialFrom(context.Background(), "tcp", ln.Addr().String(), []int{busyPort}); err == nil || !strings.Contains(err.Error(), "no free local port") {
		t.Errorf("dialFrom with only a taken port = %v; want an error saying so", err)
	}
	if os.Geteuid() == 0 {
		c, err := PrivilegedDial(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("PrivilegedDial: %v", err)
		}
		defer c.Close()
		if p := c.LocalAddr().(*net.TCPAddr).Port; p >= 1024 || p < 512 {
			t.Errorf("PrivilegedDial from port %d, want 512-1023", p)
		}
	}
}

// TestPacketIPXEUserData: a custom iPXE server's user-data is its iPXE
// script, not for keso.
func TestPacketIPXEUserData(t *testing.T) {
	hs := httptest.NewServer(&fakeMetadata{files: map[string]string{"/metadata": "packet/metadata.json"}, special: map[string]http.HandlerFunc{
		"/userdata": body("#!ipxe\nchain --autofree https://boot.example/keso.ipxe\n"),
	}})
	defer hs.Close()
	got, err := Packet{BaseURL: hs.URL, Retry: newFakeClock().retry(30*time.Second, time.Second)}.Fetch(context.Background())
	if err != nil || got.UserData != nil || got.UserDataName != "" || got.Meta.Hostname != "store-7" {
		t.Errorf("Fetch = %+v, %v; want the meta-data and no user-data", got, err)
	}
}

func TestParsePacketMeta(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Meta
		wantErr bool
	}{
		{`{"id": "i", "hostname": " h ", "ssh_keys": ["ssh-ed25519 A a", "ssh-ed25519 A a"], "plan": "c3.small.x86"}`,
			Meta{InstanceID: "i", Hostname: "h", PublicKeys: []string{"ssh-ed25519 A a"}}, false},
		{`{"hostname": "h", "ssh_keys": null}`, Meta{Hostname: "h"}, false},
		{`{"id": 7}`, Meta{}, true},
		{`{"ssh_keys": "ssh-ed25519 A"}`, Meta{}, true},
		{`Not Found`, Meta{}, true},
	} {
		got, err := ParsePacketMeta([]byte(tc.in))
		if !reflect.DeepEqual(got, tc.want) || (err != nil) != tc.wantErr {
			t.Errorf("ParsePacketMeta(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseScalewayConf(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Meta
		wantErr bool
	}{
		{`{"id": "i", "hostname": "h", "ssh_public_keys": [{"key": "ssh-ed25519 A a", "fingerprint": "f"}]}`,
			Meta{InstanceID: "i", Hostname: "h", PublicKeys: []string{"ssh-ed25519 A a"}}, false},
		{`{"hostname": "h", "ssh_public_keys": []}`, Meta{Hostname: "h"}, false},
		{`{}`, Meta{}, false},
		{`{"id": 7}`, Meta{}, true},
		{`{"ssh_public_keys": ["ssh-ed25519 A"]}`, Meta{}, true},
		{`[]`, Meta{}, true},
		{`HOSTNAME=h`, Meta{}, true},
		{``, Meta{}, true},
	} {
		got, err := ParseScalewayConf([]byte(tc.in))
		if !reflect.DeepEqual(got, tc.want) || (err != nil) != tc.wantErr {
			t.Errorf("ParseScalewayConf(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseKeyLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"ssh-ed25519 AAAA a\nssh-rsa BBBB b\n", []string{"ssh-ed25519 AAAA a", "ssh-rsa BBBB b"}},
		{"ssh-ed25519 AAAA a\r\n\n# old key\n  ssh-ed25519 AAAA a  \n", []string{"ssh-ed25519 AAAA a"}},
		{"", nil},
		{"\n\n", nil},
	} {
		if got := ParseKeyLines([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseKeyLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseHetznerKeys(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`["ssh-ed25519 AAAA a", "ssh-rsa BBBB b"]`, []string{"ssh-ed25519 AAAA a", "ssh-rsa BBBB b"}, false},
		{`[" ssh-ed25519 AAAA a\n", "", "ssh-ed25519 AAAA a"]`, []string{"ssh-ed25519 AAAA a"}, false},
		{"[]", nil, false},
		{" \n", nil, false},
		{"null", nil, false},
		{`"ssh-ed25519 AAAA a"`, nil, true},
		{`{"keys": []}`, nil, true},
		{"[1, 2]", nil, true},
		{"<html></html>", nil, true},
	} {
		got, err := ParseHetznerKeys([]byte(tc.in))
		if !reflect.DeepEqual(got, tc.want) || (err != nil) != tc.wantErr {
			t.Errorf("ParseHetznerKeys(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseGCPKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"alice:ssh-ed25519 AAAA alice@h\n", []string{"ssh-ed25519 AAAA alice@h"}},
		{"alice:ssh-ed25519 AAAA\r\nbob:ssh-rsa BBBB bob\n\n", []string{"ssh-ed25519 AAAA", "ssh-rsa BBBB bob"}},
		{"ssh-ed25519 AAAA no-user\n", nil},
		{"a b:ssh-ed25519 AAAA\n:ssh-rsa BBBB\n", nil},
		{"alice:\nbob:   \n", nil},
		{"alice:ssh-ed25519 AAAA\nbob:ssh-ed25519 AAAA\n", []string{"ssh-ed25519 AAAA"}},
		{"", nil},
	} {
		if got := ParseGCPKeys([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseGCPKeys(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCollectCloudProviders: with k3OS's list of clouds in data_sources, on
// a Hetzner server: the GCP probe is answered 404 by Hetzner's service
// (not found, at once), Hetzner's is found, and the clouds after it are
// not asked; its meta-data facts and then its user-data are loaded.
func TestCollectCloudProviders(t *testing.T) {
	var hetzner providerCase
	for _, pc := range providerCases() {
		if pc.name == HetznerName {
			hetzner = pc
		}
	}
	srv := &fakeMetadata{files: hetzner.files}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	retry := newFakeClock().retry(30*time.Second, time.Second)
	network := 0
	var log bytes.Buffer
	got := Collect(context.Background(), Inputs{
		Files:   localRoot(t, map[string]string{StateConfigPath: "k3os:\n  data_sources: [gcp, hetzner, digitalocean]\n"}),
		Cmdline: "console=ttyS0",
		Fetchers: Fetchers{ByName: map[string]Fetcher{
			GCPName:          GCP{BaseURL: hs.URL, Retry: retry},
			HetznerName:      Hetzner{BaseURL: hs.URL, Retry: retry},
			DigitalOceanName: DigitalOcean{BaseURL: hs.URL, Retry: retry},
		}},
		BeforeNetwork: func(context.Context) error { network++; return nil },
		Log:           &log,
	})
	want := []string{StateConfigPath, hs.URL + "/hetzner/v1/metadata", hs.URL + "/hetzner/v1/userdata", CmdlineName}
	if !reflect.DeepEqual(names(got.Sources), want) || network != 1 || len(got.Report.Failures) != 0 {
		t.Errorf("sources %q (want %q), network brought up %d times, failures %v\n%s",
			names(got.Sources), want, network, got.Report.Failures, log.String())
	}
	res := cloudconfig.Load(got.Sources...)
	if res.Config.Hostname != "store-7" || res.Config.Keso.Labels["cloud"] != "hetzner" || len(res.Config.SSHAuthorizedKeys) != 2 {
		t.Errorf("config: hostname %q, labels %v, keys %q", res.Config.Hostname, res.Config.Keso.Labels, res.Config.SSHAuthorizedKeys)
	}
	for _, line := range []string{"none gcp", "found hetzner:" + hs.URL, "skip digitalocean"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log does not say %q:\n%s", line, log.String())
		}
	}
}
