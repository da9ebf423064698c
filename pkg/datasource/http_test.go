package datasource

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock: Sleep advances it at once.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return ctx.Err()
}

func (c *fakeClock) retry(budget, attempt time.Duration) Retry {
	return Retry{Budget: budget, AttemptTimeout: attempt, Now: c.Now, Sleep: c.Sleep}
}

func TestHTTPFailsThenSucceeds(t *testing.T) {
	const body = "#cloud-config\nhostname: from-http\n"
	for _, tc := range []struct {
		name string
		fail func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { http.Error(w, "warming up", http.StatusServiceUnavailable) }},
		{"connection-dropped", func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
		{"429", func(w http.ResponseWriter) { http.Error(w, "slow down", http.StatusTooManyRequests) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 3 {
					tc.fail(w)
					return
				}
				w.Write([]byte(body))
			}))
			defer srv.Close()
			clk := newFakeClock()
			got, err := HTTP{URL: srv.URL + "/node.yaml", Retry: clk.retry(time.Minute, time.Second)}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if string(got.UserData) != body || got.UserDataName != srv.URL+"/node.yaml" || got.Origin != srv.URL+"/node.yaml" {
				t.Errorf("got %+v", got)
			}
			if got, want := n.Load(), int32(4); got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}
			if want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}; !reflect.DeepEqual(clk.sleeps, want) {
				t.Errorf("pauses = %v, want %v", clk.sleeps, want)
			}
		})
	}
}

// TestHTTPNeverAnswers: a server that accepts and never answers costs at
// most the budget, then gives a clear error.
func TestHTTPNeverAnswers(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	clk := newFakeClock()
	start := time.Now()
	_, err := HTTP{URL: srv.URL, Retry: clk.retry(10*time.Second, 50*time.Millisecond)}.Fetch(context.Background())
	if err == nil {
		t.Fatal("Fetch succeeded against a server that never answers")
	}
	// Pauses 0.5+1+2+4 = 7.5 s of the 10 s budget; the next (8 s) does not fit.
	if got, want := n.Load(), int32(5); got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if !strings.Contains(err.Error(), "gave up after 5 attempts") || !strings.Contains(err.Error(), "budget 10s") {
		t.Errorf("error %q should say how many attempts and the budget", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s of real time; each attempt should stop at its 50ms timeout", d)
	}
}

func TestHTTPUnreachableBounded(t *testing.T) {
	// A port nothing listens on: connection refused, retried until the budget.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	clk := newFakeClock()
	_, err := HTTP{URL: url + "/x", Retry: clk.retry(20*time.Second, time.Second)}.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Fetch = %v; want a bounded give-up error", err)
	}
	var total time.Duration
	for _, d := range clk.sleeps {
		total += d
	}
	if total > 20*time.Second {
		t.Errorf("slept %s in total, more than the 20s budget", total)
	}
}

func TestHTTPPermanentErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	clk := newFakeClock()
	_, err := HTTP{URL: srv.URL + "/missing.yaml", Retry: clk.retry(time.Minute, time.Second)}.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Fetch = %v; want a 404 error", err)
	}
	if n.Load() != 1 || len(clk.sleeps) != 0 {
		t.Errorf("a 404 was retried: %d requests, pauses %v", n.Load(), clk.sleeps)
	}

	for _, u := range []string{"ftp://x/y", "not a url", "http://"} {
		if _, err := (HTTP{URL: u}).Fetch(context.Background()); err == nil {
			t.Errorf("Fetch(%q) = nil error; want a bad-URL error", u)
		}
	}
}

// TestHTTPSSystemRoots: the default client verifies against the system
// roots, so httptest's self-signed certificate is refused at once, with a
// hint; a client that trusts it succeeds.
func TestHTTPSSystemRoots(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Write([]byte("hostname: tls\n"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	clk := newFakeClock()
	_, err := HTTP{URL: srv.URL, Retry: clk.retry(time.Minute, time.Second)}.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ca-certificates.crt") {
		t.Fatalf("Fetch with system roots = %v; want an unknown-authority error naming the roots file", err)
	}
	if len(clk.sleeps) != 0 {
		t.Errorf("a certificate error was retried (pauses %v)", clk.sleeps)
	}
	got, err := HTTP{URL: srv.URL, Client: srv.Client(), Retry: clk.retry(time.Minute, time.Second)}.Fetch(context.Background())
	if err != nil || string(got.UserData) != "hostname: tls\n" {
		t.Errorf("Fetch with the server's CA = %q, %v", got.UserData, err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:s3cret@cfg.example/n.yaml", "https://user:xxxxx@cfg.example/n.yaml"},
		{"https://cfg.example/n.yaml", "https://cfg.example/n.yaml"},
		// Not URLs net/url parses: the user info is hidden all the same
		// (found by FuzzNoCloudURL).
		{"http://:0@000000000 /", "http://xxxxx@000000000 /"},
		{"https://user:s3cret@cfg.example/%zz", "https://xxxxx@cfg.example/%zz"},
		{"https://u:p@ss@cfg example/seed/", "https://xxxxx@cfg example/seed/"},
		{"https://cfg example/n", "https://cfg example/n"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// imdsServer serves testdata/ec2 like the EC2 instance metadata service.
type imdsServer struct {
	v2, requireToken, noUserData bool
	puts, gets, getsWithToken    atomic.Int32
}

const imdsToken = "AQAEAKesoTestToken=="

func (s *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		s.puts.Add(1)
		if !s.v2 {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Write([]byte(imdsToken))
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	s.gets.Add(1)
	if r.Header.Get("X-aws-ec2-metadata-token") == imdsToken {
		s.getsWithToken.Add(1)
	} else if s.requireToken {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	if s.noUserData && r.URL.Path == "/latest/user-data" {
		http.NotFound(w, r)
		return
	}
	p := filepath.Join("testdata/ec2", filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/")))
	if strings.HasSuffix(r.URL.Path, "/") {
		p = filepath.Join(p, "_index")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

// foundView is Found with strings, and the test server's address replaced,
// for golden files.
type foundView struct {
	Origin, UserData, UserDataName, MetaName string
	Meta                                     Meta
}

func viewFound(f Found, base string) foundView {
	r := strings.NewReplacer(base, "BASE")
	return foundView{Origin: r.Replace(f.Origin), UserData: string(f.UserData), UserDataName: r.Replace(f.UserDataName),
		MetaName: r.Replace(f.MetaName), Meta: f.Meta}
}

func TestEC2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		srv    *imdsServer
		golden string
		token  bool
	}{
		{"v2", &imdsServer{v2: true, requireToken: true}, "ec2/found.golden.json", true},
		{"v1-fallback", &imdsServer{}, "ec2/found.golden.json", false},
		{"no-user-data", &imdsServer{v2: true, noUserData: true}, "ec2/found-no-user-data.golden.json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.srv)
			defer srv.Close()
			clk := newFakeClock()
			got, err := EC2{BaseURL: srv.URL, Retry: clk.retry(30*time.Second, time.Second)}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			golden(t, tc.golden, viewFound(got, srv.URL))
			if tc.srv.puts.Load() != 1 {
				t.Errorf("token requests = %d, want 1", tc.srv.puts.Load())
			}
			withToken := tc.srv.getsWithToken.Load() == tc.srv.gets.Load()
			if tc.srv.getsWithToken.Load() == 0 {
				withToken = false
			}
			if withToken != tc.token {
				t.Errorf("GETs with the token: %d of %d; want token use %v", tc.srv.getsWithToken.Load(), tc.srv.gets.Load(), tc.token)
			}
		})
	}
}

func TestEC2Absent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	clk := newFakeClock()
	_, err := EC2{BaseURL: url, Retry: clk.retry(5*time.Second, 100*time.Millisecond)}.Fetch(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch with no service = %v; want ErrNotFound", err)
	}
}

func TestOpenStackMetadataService(t *testing.T) {
	meta, err := os.ReadFile("testdata/openstack/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/openstack/latest/meta_data.json":
			w.Write(meta)
		case "/openstack/latest/user_data":
			w.Write([]byte("#cloud-config\nhostname: from-openstack\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	node := newFakeNode(t) // no config drive
	clk := newFakeClock()
	got, err := OpenStackSource{Drive: ConfigDrive{Devices: Devices{Root: node.root}}, BaseURL: srv.URL,
		Retry: clk.retry(10*time.Second, time.Second)}.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	golden(t, "openstack/service-found.golden.json", viewFound(got, srv.URL))
}

func TestNoCloudSeedURL(t *testing.T) {
	md, err := os.ReadFile("testdata/nocloud/basic.meta-data")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seed/user-data":
			w.Write([]byte("#cloud-config\nhostname: seeded\n"))
		case "/seed/meta-data":
			w.Write(md)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	clk := newFakeClock()
	got, err := NoCloudSeed{Seed: srv.URL + "/seed/", Retry: clk.retry(10*time.Second, time.Second)}.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	golden(t, "nocloud/seed-found.golden.json", viewFound(got, srv.URL))
}

func TestInstallConfigHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hostname: over-http\n"))
	}))
	defer srv.Close()
	b, name, err := InstallConfig(context.Background(), nil, srv.URL+"/i.yaml", nil, Retry{})
	if err != nil || string(b) != "hostname: over-http\n" || name != srv.URL+"/i.yaml" {
		t.Errorf("InstallConfig = %q, %q, %v", b, name, err)
	}
}
