package kubenode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
)

// pki is a client CA and a kubelet's client certificate signed by it.
type pki struct {
	caPool           *x509.CertPool
	certPEM, keyPEM  []byte
	otherCert, other []byte // a certificate from another CA
}

func newPKI(t *testing.T, cn string) pki {
	t.Helper()
	ca, caKey := cert(t, "client-ca", nil, nil, true)
	c, k := cert(t, cn, ca, caKey, false)
	oca, ocaKey := cert(t, "rogue-ca", nil, nil, true)
	oc, ok := cert(t, cn, oca, ocaKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pki{caPool: pool, certPEM: pemCert(c), keyPEM: pemKey(t, k), otherCert: pemCert(oc), other: pemKey(t, ok)}
}

func cert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: isCA,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// apiServer is a fake API server for nodes over real TLS that requires a
// client certificate from the client CA and, like the NodeRestriction
// admission, lets system:node:<name> patch only Node <name>.
type apiServer struct {
	*httptest.Server
	mu      sync.Mutex
	nodes   map[string]map[string]any // name → Node JSON
	patches []string
}

func newAPIServer(t *testing.T, p pki) *apiServer {
	s := &apiServer{nodes: map[string]map[string]any{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.caPool}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) addNode(name string, ready string, ann map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := map[string]any{}
	for k, v := range ann {
		a[k] = v
	}
	s.nodes[name] = map[string]any{
		"metadata": map[string]any{"name": name, "annotations": a},
		"status": map[string]any{
			"conditions": []any{map[string]any{"type": "MemoryPressure", "status": "False"},
				map[string]any{"type": "Ready", "status": ready, "reason": "KubeletNotReady", "message": "container runtime network not ready"}},
			"nodeInfo": map[string]any{"osImage": "keso 2.0.0"},
		},
	}
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user := r.TLS.PeerCertificates[0].Subject.CommonName
	name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/")
	status := func(code int, msg string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "message": msg})
	}
	if !ok {
		status(404, "no route "+r.URL.Path)
		return
	}
	n := s.nodes[name]
	if n == nil {
		status(404, fmt.Sprintf(`nodes %q not found`, name))
		return
	}
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(n)
	case http.MethodPatch:
		if user != "system:node:"+name {
			status(403, fmt.Sprintf(`nodes %q is forbidden: User %q cannot patch resource "nodes"`, name, user))
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/merge-patch+json" {
			status(415, "unsupported media type "+ct)
			return
		}
		b, _ := io.ReadAll(r.Body)
		s.patches = append(s.patches, string(b))
		var p struct {
			Metadata struct {
				Annotations map[string]*string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			status(400, err.Error())
			return
		}
		ann := n["metadata"].(map[string]any)["annotations"].(map[string]any)
		for k, v := range p.Metadata.Annotations {
			if v == nil {
				delete(ann, k)
			} else {
				ann[k] = *v
			}
		}
		json.NewEncoder(w).Encode(n)
	default:
		status(405, "method")
	}
}

// node writes a kubeconfig like k3s's kubelet.kubeconfig at its path:
// the CA by absolute path, the client certificate and key by paths
// relative to the kubeconfig's folder, or everything embedded.
func writeKubeconfig(t *testing.T, srv *apiServer, certPEM, keyPEM []byte, embed bool) host.FS {
	t.Helper()
	fs := host.FS{Root: t.TempDir()}
	caPEM := pemCert(srv.Certificate())
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var cluster, user string
	if embed {
		b64 := base64.StdEncoding.EncodeToString
		cluster = "certificate-authority-data: " + b64(caPEM)
		user = "client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(keyPEM)
	} else {
		must(fs.WriteFileAtomic("/var/lib/rancher/k3s/agent/server-ca.crt", caPEM, 0o644))
		must(fs.WriteFileAtomic("/var/lib/rancher/k3s/agent/client-kubelet.crt", certPEM, 0o644))
		must(fs.WriteFileAtomic("/var/lib/rancher/k3s/agent/client-kubelet.key", keyPEM, 0o600))
		cluster = "certificate-authority: /var/lib/rancher/k3s/agent/server-ca.crt"
		user = "client-certificate: client-kubelet.crt\n    client-key: ./client-kubelet.key"
	}
	kc := fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    server: %s
    %s
  name: local
contexts:
- context:
    cluster: local
    namespace: default
    user: user
  name: Default
current-context: Default
kind: Config
preferences: {}
users:
- name: user
  user:
    %s
`, srv.URL, cluster, user)
	must(fs.WriteFileAtomic(KubeletKubeconfig, []byte(kc), 0o600))
	return fs
}

func client(t *testing.T, fs host.FS) (*Client, Config) {
	t.Helper()
	cfg, err := LoadKubeconfig(fs, KubeletKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func TestGetAndAnnotate(t *testing.T) {
	p := newPKI(t, "system:node:node-1")
	srv := newAPIServer(t, p)
	srv.addNode("node-1", "True", map[string]string{"keso.io/rollback": "old", "other": "kept"})
	srv.addNode("node-2", "False", nil)
	ctx := context.Background()
	for _, embed := range []bool{false, true} {
		c, cfg := client(t, writeKubeconfig(t, srv, p.certPEM, p.keyPEM, embed))
		if got := cfg.NodeName(); got != "node-1" {
			t.Errorf("NodeName() = %q, want node-1 (from the certificate's system:node: subject)", got)
		}
		n, err := c.Get(ctx, "node-1")
		if err != nil {
			t.Fatalf("embed=%v: %v", embed, err)
		}
		if !n.Ready || n.Name != "node-1" || n.OSImage != "keso 2.0.0" || n.Annotations["other"] != "kept" {
			t.Errorf("Get(node-1) = %+v, want node-1 Ready, keso 2.0.0, its annotations", n)
		}
		n2, err := c.Get(ctx, "node-2")
		if err != nil || n2.Ready || n2.ReadyReason != "Ready=False KubeletNotReady: container runtime network not ready" {
			t.Errorf("Get(node-2) = %+v, %v; want not Ready with the condition's reason", n2, err)
		}
		if _, err := c.Get(ctx, "node-3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(node-3) = %v, want ErrNotFound", err)
		}
	}

	c, _ := client(t, writeKubeconfig(t, srv, p.certPEM, p.keyPEM, false))
	if err := c.Annotate(ctx, "node-1", map[string]string{"keso.io/version": "2.0.0", "keso.io/committed": "true"}, []string{"keso.io/rollback"}); err != nil {
		t.Fatal(err)
	}
	n, _ := c.Get(ctx, "node-1")
	got, _ := json.Marshal(n.Annotations)
	if want := `{"keso.io/committed":"true","keso.io/version":"2.0.0","other":"kept"}`; string(got) != want {
		t.Errorf("annotations after the patch: %s, want %s", got, want)
	}
	if want := `{"metadata":{"annotations":{"keso.io/committed":"true","keso.io/rollback":null,"keso.io/version":"2.0.0"}}}`; srv.patches[len(srv.patches)-1] != want {
		t.Errorf("patch body %s, want %s", srv.patches[len(srv.patches)-1], want)
	}
	// The kubelet's credentials may not patch another Node; the error
	// carries the API server's message.
	err := c.Annotate(ctx, "node-2", map[string]string{"keso.io/version": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || !strings.Contains(err.Error(), `cannot patch resource "nodes"`) {
		t.Errorf("Annotate(node-2) = %v, want the 403 and its message", err)
	}
}

func TestTLSIsVerified(t *testing.T) {
	p := newPKI(t, "system:node:node-1")
	srv := newAPIServer(t, p)
	srv.addNode("node-1", "True", nil)
	// A client certificate from another CA: the server refuses the handshake.
	c, _ := client(t, writeKubeconfig(t, srv, p.otherCert, p.other, false))
	if _, err := c.Get(context.Background(), "node-1"); err == nil {
		t.Errorf("Get with a certificate from another CA succeeded")
	}
	// A CA that did not sign the server's certificate: the client refuses.
	fs := writeKubeconfig(t, srv, p.certPEM, p.keyPEM, false)
	fs.WriteFileAtomic("/var/lib/rancher/k3s/agent/server-ca.crt", p.certPEM, 0o644)
	c, _ = client(t, fs)
	if _, err := c.Get(context.Background(), "node-1"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Get against a server the CA did not sign = %v, want a certificate error", err)
	}
}

func TestLoadKubeconfigErrors(t *testing.T) {
	base := func(ctx, cluster, user string) string {
		return "current-context: " + ctx + "\nclusters:\n- name: c\n  cluster: {" + cluster + "}\ncontexts:\n- name: d\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {" + user + "}\n"
	}
	for _, tc := range []struct{ name, kc, want string }{
		{"missing file", "", "read kubeconfig"},
		{"not yaml", "clusters: [", "expected a kubectl config file"},
		{"unknown context", base("nope", "server: https://x", ""), `current-context "nope" is not among its contexts`},
		{"no server", base("d", "", ""), `cluster "c" has no server`},
		{"bad data", base("d", "server: https://x, certificate-authority-data: '%%'", ""), "certificate-authority-data is not base64"},
		{"missing cert file", base("d", "server: https://x", "client-certificate: kubelet.crt, client-key: kubelet.key"), "client-certificate: read /etc/kubelet.crt"},
		{"cert without key", base("d", "server: https://x", "client-certificate-data: eA=="), "without a key"},
		{"no context", "clusters: [{name: a, cluster: {server: https://a}}, {name: b, cluster: {server: https://b}}]\n", "no current-context"},
	} {
		fs := host.FS{Root: t.TempDir()}
		if tc.kc != "" {
			fs.WriteFileAtomic("/etc/kc", []byte(tc.kc), 0o600)
		}
		_, err := LoadKubeconfig(fs, "/etc/kc")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	// A token (and a kubeconfig with a single cluster and no context).
	fs := host.FS{Root: t.TempDir()}
	fs.WriteFileAtomic("/etc/tok", []byte("s3cret\n"), 0o600)
	fs.WriteFileAtomic("/etc/kc", []byte("clusters: [{name: a, cluster: {server: 'https://a:6443/'}}]\nusers: [{name: u, user: {tokenFile: tok}}]\n"), 0o600)
	cfg, err := LoadKubeconfig(fs, "/etc/kc")
	if err != nil || cfg.Server != "https://a:6443" || cfg.Token != "s3cret" {
		t.Errorf("LoadKubeconfig = %+v, %v; want server https://a:6443 and the token from tok", cfg, err)
	}
}
