package main

// The stand-in's kubelet side: what a healthy k3s node offers keso's trial
// health gate and node annotations (pkg/agent, pkg/kubenode). It writes
// the kubelet's kubeconfig and credentials where k3s does, and answers the
// requests a kubelet's credentials may make about their own Node over TLS:
// GET and merge-PATCH /api/v1/nodes/<name>, and /readyz.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/k3s"
)

// Where k3s writes the kubelet's credentials, on agents and servers alike
// (k3s's agent dir; the layout of its kubeconfig template).
const (
	kubeletKubeconfig = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
	serverCAFile      = "/var/lib/rancher/k3s/agent/server-ca.crt"
	clientCAFile      = "/var/lib/rancher/k3s/agent/client-ca.crt"
	kubeletCertFile   = "/var/lib/rancher/k3s/agent/client-kubelet.crt"
	kubeletKeyFile    = "/var/lib/rancher/k3s/agent/client-kubelet.key"

	// kubeletAPIAddr is where the stand-in's API answers: the port of
	// k3s's agent load balancer (:6443 stays the plain HTTP /readyz).
	kubeletAPIAddr = "127.0.0.1:6444"

	// nodeRecordFile is where the stand-in keeps its Node's annotations and
	// every patch it applied (NodeRecord), for the tests.
	nodeRecordFile = "/run/k3s-standin-node.json"
)

// kubeconfigTemplate is k3s's own (pkg/daemons/control/deps KubeConfig).
const kubeconfigTemplate = `apiVersion: v1
clusters:
- cluster:
    server: %s
    certificate-authority: %s
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
    client-certificate: %s
    client-key: %s
`

// nodeName is the name k3s registers the node under (pkg/k3s's rules:
// --node-name, the config's node-name, K3S_NODE_NAME, else the host name in
// lower case).
func nodeName(argv, env []string, configYAML []byte, hostname string) string {
	h := k3s.Handoff{Argv: argv, Env: env, ConfigYAML: configYAML}
	if len(argv) > 1 {
		h.Role = argv[1]
	}
	return h.NodeName(hostname)
}

// osImage is what a kubelet reports as status.nodeInfo.osImage: the
// PRETTY_NAME of /etc/os-release.
func osImage(osRelease string) string {
	for _, l := range strings.Split(osRelease, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}

// pki is the stand-in cluster's certificates: a server CA and its serving
// certificate for 127.0.0.1, and a client CA that signs kubelet
// certificates (k3s keeps the two CAs apart too).
type pki struct {
	serverCA, clientCA       *x509.Certificate
	serverCAKey, clientCAKey *ecdsa.PrivateKey
	serving                  tls.Certificate
}

func newPKI() (*pki, error) {
	p := &pki{}
	var err error
	stamp := time.Now().Unix()
	if p.serverCA, p.serverCAKey, err = sign(pkix.Name{CommonName: fmt.Sprintf("k3s-server-ca@%d", stamp)}, nil, nil, nil); err != nil {
		return nil, err
	}
	if p.clientCA, p.clientCAKey, err = sign(pkix.Name{CommonName: fmt.Sprintf("k3s-client-ca@%d", stamp)}, nil, nil, nil); err != nil {
		return nil, err
	}
	srv, key, err := sign(pkix.Name{CommonName: "k3s", Organization: []string{"k3s"}}, p.serverCA, p.serverCAKey, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		c.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default"}
	})
	if err != nil {
		return nil, err
	}
	p.serving = tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: key, Leaf: srv}
	return p, nil
}

// clientCert is a client certificate from the client CA, in PEM.
func (p *pki) clientCert(cn string, orgs ...string) (certPEM, keyPEM []byte, err error) {
	c, key, err := sign(pkix.Name{CommonName: cn, Organization: orgs}, p.clientCA, p.clientCAKey, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the key of %s: %w", cn, err)
	}
	return pemBlock("CERTIFICATE", c.Raw), pemBlock("EC PRIVATE KEY", der), nil
}

// tlsConfig serves the serving certificate and verifies a client
// certificate when one is given; requests without one are anonymous
// (the API server answers /readyz to them, nothing else).
func (p *pki) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.clientCA)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{p.serving}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
}

// sign makes a P-256 certificate for subject, signed by parent (self-signed
// CA when parent is nil); edit adjusts a leaf. It is valid from 1970 to
// 9999: a board without a real-time clock may start in 1970 or at the build
// date and jump when it syncs its clock, and this is a test fixture.
func sign(subject pkix.Name, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate a key for %s: %w", subject.CommonName, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("serial for %s: %w", subject.CommonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: time.Unix(0, 0).UTC(), NotAfter: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	if parent == nil {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the certificate of %s: %w", subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeKubelet writes the kubelet's kubeconfig for server and the files it
// names, as k3s lays them out: the server CA, the client CA, and the
// kubelet's certificate (system:node:<name>, group system:nodes) and key
// (mode 0600).
func writeKubelet(fsys host.FS, p *pki, name, server string) error {
	certPEM, keyPEM, err := p.clientCert("system:node:"+name, "system:nodes")
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{serverCAFile, pemBlock("CERTIFICATE", p.serverCA.Raw), 0o644},
		{clientCAFile, pemBlock("CERTIFICATE", p.clientCA.Raw), 0o644},
		{kubeletCertFile, certPEM, 0o644},
		{kubeletKeyFile, keyPEM, 0o600},
		{kubeletKubeconfig, fmt.Appendf(nil, kubeconfigTemplate, server, serverCAFile, kubeletCertFile, kubeletKeyFile), 0o600},
	}
	for _, f := range files {
		if err := fsys.WriteFileAtomic(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// NodeRecord is what the stand-in's Node went through, written to
// nodeRecordFile after every change and printed as a console line
// `KESO-K3S-STANDIN-NODE {json}`.
type NodeRecord struct {
	Name        string            `json:"name"`
	Server      string            `json:"server"`
	Annotations map[string]string `json:"annotations"`
	Patches     []PatchRecord     `json:"patches"`
	Refused     []string          `json:"refused,omitempty"` // requests answered 401/403
}

// PatchRecord is one merge patch applied to the Node.
type PatchRecord struct {
	At    time.Time       `json:"at"`
	User  string          `json:"user"`
	Patch json.RawMessage `json:"patch"`
}

// nodeAPI answers for one Node as the API server would to its kubelet.
type nodeAPI struct {
	name, osImage string
	fsys          host.FS
	log           io.Writer
	created       time.Time

	mu  sync.Mutex
	rec NodeRecord
}

func newNodeAPI(fsys host.FS, name, osImage, server string, log io.Writer) *nodeAPI {
	return &nodeAPI{name: name, osImage: osImage, fsys: fsys, log: log, created: time.Now().UTC(),
		rec: NodeRecord{Name: name, Server: server, Annotations: map[string]string{}, Patches: []PatchRecord{}}}
}

// startKubeletAPI listens on addr with TLS, writes the kubelet's
// credentials for that address, and serves the Node name until the
// listener is closed.
func startKubeletAPI(fsys host.FS, addr, name, osImage string, out io.Writer) (*nodeAPI, net.Listener, *pki, error) {
	p, err := newPKI()
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := tls.Listen("tcp", addr, p.tlsConfig())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	server := "https://" + ln.Addr().String()
	if err := writeKubelet(fsys, p, name, server); err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	n := newNodeAPI(fsys, name, osImage, server, out)
	n.save()
	errLog := log.New(out, "k3s-standin: ", 0)
	go (&http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}).Serve(ln)
	return n, ln, p, nil
}

// record returns a copy of what the Node went through.
func (n *nodeAPI) record() NodeRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	var r NodeRecord
	b, _ := json.Marshal(n.rec)
	json.Unmarshal(b, &r)
	return r
}

// save writes the record (n.mu held or not yet shared).
func (n *nodeAPI) save() {
	b, _ := json.Marshal(n.rec)
	if err := n.fsys.WriteFileAtomic(nodeRecordFile, b, 0o644); err != nil {
		fmt.Fprintf(n.log, "k3s-standin: %v\n", err)
	}
}

// status is a metav1.Status, the body of the API server's errors.
func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

func (n *nodeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" || r.URL.Path == "/healthz" || r.URL.Path == "/livez" {
		// Open to anyone, as system:public-info-viewer makes them.
		fmt.Fprint(w, "ok")
		return
	}
	user, groups := "system:anonymous", []string{"system:unauthenticated"}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		user, groups = c.Subject.CommonName, c.Subject.Organization
	}
	target, isNode := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/")
	if user == "system:anonymous" {
		n.refuse(r, user)
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if !isNode || target == "" || strings.Contains(target, "/") {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource (the k3s stand-in serves only GET and PATCH /api/v1/nodes/<its name> and /readyz)")
		return
	}
	verb := map[string]string{http.MethodGet: "get", http.MethodPatch: "patch"}[r.Method]
	if verb == "" {
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("the k3s stand-in does not serve %s on nodes", r.Method))
		return
	}
	// The Node authorizer: a kubelet (system:node:<name> in system:nodes)
	// reads and modifies only its own Node.
	self, isKubelet := strings.CutPrefix(user, "system:node:")
	if !isKubelet || !slices.Contains(groups, "system:nodes") {
		n.refuse(r, user)
		status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`nodes %q is forbidden: User %q cannot %s resource "nodes" in API group "" at the cluster scope`, target, user, verb))
		return
	}
	if target != self {
		n.refuse(r, user)
		msg := fmt.Sprintf(`nodes %q is forbidden: User %q cannot get resource "nodes" in API group "" at the cluster scope: node '%s' cannot read '%s', only its own Node object`, target, user, self, target)
		if verb == "patch" {
			msg = fmt.Sprintf(`nodes %q is forbidden: node %q is not allowed to modify node %q`, target, self, target)
		}
		status(w, http.StatusForbidden, "Forbidden", msg)
		return
	}
	if target != n.name {
		status(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`nodes %q not found`, target))
		return
	}
	if verb == "patch" {
		if code, msg := n.patch(r, user); code != 0 {
			status(w, code, http.StatusText(code), msg)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.object())
}

func (n *nodeAPI) refuse(r *http.Request, user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rec.Refused = append(n.rec.Refused, fmt.Sprintf("%s %s as %s", r.Method, r.URL.Path, user))
	n.save()
}

// patch applies a JSON merge patch (RFC 7386) of metadata.annotations; it
// returns an HTTP status and message when it refuses the patch.
func (n *nodeAPI) patch(r *http.Request, user string) (int, string) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/merge-patch+json" {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("the k3s stand-in applies only application/merge-patch+json, not %q", ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	var p struct {
		Metadata *struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return http.StatusUnprocessableEntity, fmt.Sprintf("the k3s stand-in applies merge patches of metadata.annotations only (string values, null removes): %v", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.Metadata != nil {
		for k, v := range p.Metadata.Annotations {
			if v == nil {
				delete(n.rec.Annotations, k)
			} else {
				n.rec.Annotations[k] = *v
			}
		}
	}
	n.rec.Patches = append(n.rec.Patches, PatchRecord{At: time.Now().UTC(), User: user, Patch: json.RawMessage(body)})
	n.save()
	b, _ := json.Marshal(n.rec.Annotations)
	fmt.Fprintf(n.log, "KESO-K3S-STANDIN-NODE {\"name\":%q,\"annotations\":%s}\n", n.name, b)
	return 0, ""
}

// object is the Node as the API server returns it: Ready, with the
// annotations patched so far.
func (n *nodeAPI) object() map[string]any {
	n.mu.Lock()
	ann := make(map[string]string, len(n.rec.Annotations))
	for k, v := range n.rec.Annotations {
		ann[k] = v
	}
	n.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339)
	return map[string]any{
		"kind": "Node", "apiVersion": "v1",
		"metadata": map[string]any{
			"name": n.name, "creationTimestamp": n.created.Format(time.RFC3339), "annotations": ann,
			"labels": map[string]string{"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH},
		},
		"spec": map[string]any{},
		"status": map[string]any{
			"conditions": []map[string]string{{
				"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (k3s stand-in)",
				"lastHeartbeatTime": now, "lastTransitionTime": n.created.Format(time.RFC3339),
			}},
			"nodeInfo": map[string]string{
				"osImage": n.osImage, "operatingSystem": "linux", "architecture": runtime.GOARCH,
				"kubeletVersion": "v0.0.0-k3s-standin", "containerRuntimeVersion": "none://k3s-standin",
			},
		},
	}
}
