package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/kubenode"
)

func TestNodeName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		argv   []string
		env    []string
		config string
		want   string
	}{
		{"hostname in lower case", []string{"/usr/local/bin/k3s", "server"}, nil, "", "store-42"},
		{"flag", []string{"/usr/local/bin/k3s", "agent", "--node-name", "flagged"}, []string{"K3S_NODE_NAME=env"}, "node-name: conf\n", "flagged"},
		{"flag with =", []string{"/usr/local/bin/k3s", "agent", "--node-name=eq"}, nil, "node-name: conf\n", "eq"},
		{"config before env", []string{"/usr/local/bin/k3s", "server"}, []string{"K3S_NODE_NAME=env"}, "node-name: conf\n", "conf"},
		{"env", []string{"/usr/local/bin/k3s", "server"}, []string{"PATH=/bin", "K3S_NODE_NAME=env"}, "", "env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nodeName(tc.argv, tc.env, []byte(tc.config), "Store-42"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOSImage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"NAME=keso\nVERSION_ID=2.0.0\nPRETTY_NAME=\"keso 2.0.0\"\n", "keso 2.0.0"},
		{"PRETTY_NAME='keso 1.0.0'", "keso 1.0.0"},
		{"NAME=keso\n", "Linux"},
	} {
		if got := osImage(tc.in); got != tc.want {
			t.Errorf("osImage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// startNode runs the kubelet API on a temp root and returns the root, the
// API and its PKI.
func startNode(t *testing.T, name string) (host.FS, *nodeAPI, *pki) {
	t.Helper()
	fsys := host.FS{Root: t.TempDir()}
	n, ln, p, err := startKubeletAPI(fsys, "127.0.0.1:0", name, "keso 2.0.0", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return fsys, n, p
}

// kubeletClient is pkg/kubenode's client with the kubeconfig the stand-in
// wrote at k3s's path.
func kubeletClient(t *testing.T, fsys host.FS) (*kubenode.Client, kubenode.Config) {
	t.Helper()
	cfg, err := kubenode.LoadKubeconfig(fsys, kubenode.KubeletKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubenode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func TestKubeletFilesAsK3sLaysThemOut(t *testing.T) {
	fsys, n, _ := startNode(t, "store-42")
	kc, err := fsys.ReadFile(kubenode.KubeletKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"server: " + n.record().Server + "\n",
		"certificate-authority: /var/lib/rancher/k3s/agent/server-ca.crt\n",
		"client-certificate: /var/lib/rancher/k3s/agent/client-kubelet.crt\n",
		"client-key: /var/lib/rancher/k3s/agent/client-kubelet.key\n",
		"current-context: Default\n",
	} {
		if !bytes.Contains(kc, []byte(want)) {
			t.Errorf("kubelet.kubeconfig lacks %q:\n%s", want, kc)
		}
	}
	if !strings.HasPrefix(n.record().Server, "https://127.0.0.1:") {
		t.Errorf("server %q, want https://127.0.0.1:<port>", n.record().Server)
	}
	for p, want := range map[string]os.FileMode{
		"/var/lib/rancher/k3s/agent/client-kubelet.key": 0o600,
		"/var/lib/rancher/k3s/agent/client-kubelet.crt": 0o644,
		"/var/lib/rancher/k3s/agent/server-ca.crt":      0o644,
		"/var/lib/rancher/k3s/agent/client-ca.crt":      0o644,
	} {
		st, err := os.Stat(fsys.Path(p))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	_, cfg := kubeletClient(t, fsys)
	if got, want := cfg.NodeName(), "store-42"; got != want {
		t.Errorf("the kubelet certificate names node %q, want %q", got, want)
	}
}

func TestKubeletReadsAndAnnotatesItsNode(t *testing.T) {
	fsys, n, _ := startNode(t, "store-42")
	c, _ := kubeletClient(t, fsys)
	ctx := context.Background()

	if err := c.Readyz(ctx); err != nil {
		t.Errorf("readyz: %v", err)
	}
	node, err := c.Get(ctx, "store-42")
	if err != nil {
		t.Fatal(err)
	}
	if !node.Ready || node.Name != "store-42" || node.OSImage != "keso 2.0.0" || len(node.Annotations) != 0 {
		t.Errorf("got %+v, want store-42 Ready on keso 2.0.0 without annotations", node)
	}

	// A trial boot, then its commit (what pkg/agent's annotator sends).
	if err := c.Annotate(ctx, "store-42", map[string]string{"keso.io/version": "2.0.0", "keso.io/slot": "b", "keso.io/committed": "false", "keso.io/rollback": "x"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Annotate(ctx, "store-42", map[string]string{"keso.io/committed": "true"}, []string{"keso.io/rollback"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"keso.io/version": "2.0.0", "keso.io/slot": "b", "keso.io/committed": "true"}
	node, err = c.Get(ctx, "store-42")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(node.Annotations, want) {
		t.Errorf("annotations %v, want %v", node.Annotations, want)
	}

	// What the tests read back from the node.
	b, err := fsys.ReadFile(nodeRecordFile)
	if err != nil {
		t.Fatal(err)
	}
	var rec NodeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Name != "store-42" || !reflect.DeepEqual(rec.Annotations, want) || len(rec.Patches) != 2 || len(rec.Refused) != 0 {
		t.Errorf("record %s, want store-42 with %v, 2 patches, nothing refused", b, want)
	}
	if got, want := rec.Patches[1].User, "system:node:store-42"; got != want {
		t.Errorf("patch by %q, want %q", got, want)
	}
	if !reflect.DeepEqual(n.record(), rec) {
		t.Errorf("the record file %+v differs from the stand-in's %+v", rec, n.record())
	}
}

func TestKubeletAPIRefuses(t *testing.T) {
	fsys, n, p := startNode(t, "store-42")
	mine, cfg := kubeletClient(t, fsys)
	otherCert, otherKey, err := p.clientCert("system:node:store-7", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	ocfg := cfg
	ocfg.CertPEM, ocfg.KeyPEM = otherCert, otherKey
	other, err := kubenode.New(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"another node's kubelet reads it", func() error { _, err := other.Get(ctx, "store-42"); return err }, "403 Forbidden"},
		{"another node's kubelet annotates it", func() error {
			return other.Annotate(ctx, "store-42", map[string]string{"keso.io/version": "9"}, nil)
		}, `node "store-7" is not allowed to modify node "store-42"`},
		{"it reads another node", func() error { _, err := mine.Get(ctx, "store-7"); return err }, "403 Forbidden"},
		{"it annotates another node", func() error {
			return mine.Annotate(ctx, "store-7", map[string]string{"keso.io/version": "9"}, nil)
		}, "403 Forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if got := n.record(); len(got.Annotations) != 0 || len(got.Patches) != 0 || len(got.Refused) != 4 {
		t.Errorf("record %+v, want no annotations, no patches, 4 refused", got)
	}

	// Without a client certificate: /readyz only; a certificate from
	// another CA: no TLS at all; another patch type: 415.
	anon := cfg
	anon.CertPEM, anon.KeyPEM = nil, nil
	ac, err := kubenode.New(anon)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.Readyz(ctx); err != nil {
		t.Errorf("anonymous readyz: %v", err)
	}
	if _, err := ac.Get(ctx, "store-42"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("anonymous get: %v, want 401", err)
	}
	rogue, err := newPKI()
	if err != nil {
		t.Fatal(err)
	}
	rc, rk, err := rogue.clientCert("system:node:store-42", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	rcfg := cfg
	rcfg.CertPEM, rcfg.KeyPEM = rc, rk
	rcl, err := kubenode.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rcl.Get(ctx, "store-42"); err == nil || !strings.Contains(err.Error(), "tls: ") {
		t.Errorf("get with a certificate from another CA: %v, want a TLS failure", err)
	}

	tc, err := cfgTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	req, _ := http.NewRequest(http.MethodPatch, n.record().Server+"/api/v1/nodes/store-42", strings.NewReader(`[{"op":"add","path":"/metadata/annotations/a","value":"b"}]`))
	req.Header.Set("Content-Type", "application/json-patch+json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("json-patch: %s, want 415", resp.Status)
	}
}

// cfgTLS is the kubelet's TLS client settings, for raw requests.
func cfgTLS(cfg kubenode.Config) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(cfg.CertPEM, cfg.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.CA)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}

// A board without a real-time clock boots in 1970 and may jump to today
// when it syncs: the kubelet's certificate must verify on either side.
func TestCertificatesOutliveClockJumps(t *testing.T) {
	p, err := newPKI()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := p.clientCert("system:node:pi", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	clients, servers := x509.NewCertPool(), x509.NewCertPool()
	clients.AddCert(p.clientCA)
	servers.AddCert(p.serverCA)
	for _, now := range []time.Time{time.Unix(0, 0), time.Now(), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: clients, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("kubelet certificate at %s: %v", now, err)
		}
		if _, err := p.serving.Leaf.Verify(x509.VerifyOptions{Roots: servers, CurrentTime: now, DNSName: "127.0.0.1"}); err != nil {
			t.Errorf("serving certificate at %s: %v", now, err)
		}
	}
}
