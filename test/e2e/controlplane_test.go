package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// controlPlane is a real Kubernetes control plane on the host for the
// real-node test: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler v1.37.2 (scripts/kube-tools.sh builds them from Go
// modules). The API server listens on the host's loopback; QEMU's user
// network lets the guests reach it as https://10.0.2.2:PORT, so its
// serving certificate names 10.0.2.2 too. Nodes join as k3s agents do:
// the token carries the CA's hash and a bootstrap token, the CA is
// discovered from kube-public/cluster-info and the kubelet's client
// certificate comes from TLS bootstrap (the controller manager signs and
// approves the CSR). Authorization is Node,RBAC with NodeRestriction, as
// in k3s.
type controlPlane struct {
	t          testing.TB
	dir        string
	assets     string
	Port       int
	HostURL    string // https://127.0.0.1:PORT
	GuestURL   string // https://10.0.2.2:PORT
	Kubeconfig string // cluster-admin, for kubectl and the host-side operator
	Token      string // K10<ca hash>::<id>.<secret>
	CA         []byte
}

const (
	clusterCIDR = "10.42.0.0/16"
	serviceCIDR = "10.43.0.0/16"
)

// kubeAssets is the folder of the Kubernetes binaries; without it the
// test skips loudly, or fails under CI=true (CI builds them: make test).
func kubeAssets(t testing.TB) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	d := os.Getenv("KUBEBUILDER_ASSETS")
	if d == "" {
		out, err := exec.Command(filepath.Join(repoRoot(), "scripts/kube-tools.sh"), "--print-dir").Output()
		if err != nil {
			skip("SKIP: the real-node test needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl v1.37.2: run scripts/kube-tools.sh (make test does): %v", err)
		}
		d = strings.TrimSpace(string(out))
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			skip("SKIP: %s has no %s: run scripts/kube-tools.sh (make test does)", d, b)
		}
	}
	return d
}

func startControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, dir: t.TempDir(), assets: kubeAssets(t)}
	cp.Port = freePort(t)
	cp.HostURL = fmt.Sprintf("https://127.0.0.1:%d", cp.Port)
	cp.GuestURL = fmt.Sprintf("https://10.0.2.2:%d", cp.Port)
	p := func(name string) string { return filepath.Join(cp.dir, name) }

	caKey, caCert := newCA(t)
	cp.CA = pemCert(caCert)
	writePEM(t, p("ca.crt"), cp.CA)
	writePEM(t, p("ca.key"), pemKey(t, caKey))
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.2.2"), net.ParseIP("10.43.0.1")}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	sk, sc := issue(t, caKey, caCert, pkix.Name{CommonName: "kube-apiserver"}, ips, dns, x509.ExtKeyUsageServerAuth)
	writePEM(t, p("apiserver.crt"), pemCert(sc))
	writePEM(t, p("apiserver.key"), pemKey(t, sk))
	ak, ac := issue(t, caKey, caCert, pkix.Name{CommonName: "keso-e2e-admin", Organization: []string{"system:masters"}}, nil, nil, x509.ExtKeyUsageClientAuth)
	writePEM(t, p("admin.crt"), pemCert(ac))
	writePEM(t, p("admin.key"), pemKey(t, ak))
	saKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	writePEM(t, p("sa.key"), pemKey(t, saKey))
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	writePEM(t, p("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}))
	cp.Kubeconfig = p("admin.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %s, certificate-authority: %s}
users:
- name: admin
  user: {client-certificate: %s, client-key: %s}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, cp.HostURL, p("ca.crt"), p("admin.crt"), p("admin.key"))
	if err := os.WriteFile(cp.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}

	etcdPort, peerPort := freePort(t), freePort(t)
	cp.start("etcd", "--data-dir", p("etcd"), "--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort), "--unsafe-no-fsync")
	cp.start("kube-apiserver",
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", cp.Port),
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth", "--allow-privileged=true", "--cert-dir="+p("apiserver-certs"))
	cp.waitReady()
	cp.start("kube-controller-manager", "--kubeconfig="+cp.Kubeconfig,
		"--authentication-kubeconfig="+cp.Kubeconfig, "--authorization-kubeconfig="+cp.Kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)),
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--root-ca-file="+p("ca.crt"), "--service-account-private-key-file="+p("sa.key"),
		"--allocate-node-cidrs", "--cluster-cidr="+clusterCIDR, "--node-cidr-mask-size=24",
		"--service-cluster-ip-range="+serviceCIDR, "--controllers=*,bootstrapsigner,tokencleaner",
		"--leader-elect=false", "--use-service-account-credentials=false")
	cp.start("kube-scheduler", "--kubeconfig="+cp.Kubeconfig,
		"--authentication-kubeconfig="+cp.Kubeconfig, "--authorization-kubeconfig="+cp.Kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)), "--leader-elect=false")

	// The join: a bootstrap token, the RBAC that lets its holders ask for
	// node certificates (approved by the controller manager), and the
	// discovery document that agents check the CA hash against.
	id, secret := randLower(t, 6), randLower(t, 16)
	sum := sha256.Sum256(cp.CA)
	cp.Token = "K10" + hex.EncodeToString(sum[:]) + "::" + id + "." + secret
	discovery := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n",
		cp.GuestURL, base64.StdEncoding.EncodeToString(cp.CA))
	cp.apply(fmt.Sprintf(joinObjects, id, secret, indent(discovery, "    ")))
	return cp
}

// joinObjects is what kubeadm creates for a TLS-bootstrap join.
const joinObjects = `apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-%[1]s, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: %[1]s
  token-secret: %[2]s
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-node-bootstrapper}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node-bootstrapper}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:bootstrappers}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-node-autoapprove-bootstrap}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:certificates.k8s.io:certificatesigningrequests:nodeclient}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:bootstrappers}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-node-autoapprove-renewal}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:certificates.k8s.io:certificatesigningrequests:selfnodeclient}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-info, namespace: kube-public}
data:
  kubeconfig: |
%[3]s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-cluster-info, namespace: kube-public}
rules: [{apiGroups: [""], resources: [configmaps], resourceNames: [cluster-info], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-cluster-info, namespace: kube-public}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-cluster-info}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:anonymous}]
`

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

// start runs one control-plane process for the life of the test, its
// output in the test's log folder.
func (cp *controlPlane) start(name string, args ...string) {
	cp.t.Helper()
	lf, err := os.Create(filepath.Join(logDir(cp.t), "controlplane-"+name+".log"))
	if err != nil {
		cp.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(cp.assets, name), args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		cp.t.Fatalf("start %s: %v", name, err)
	}
	cp.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		lf.Close()
	})
}

func (cp *controlPlane) waitReady() {
	cp.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.CA)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := c.Get(cp.HostURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			cp.t.Fatalf("kube-apiserver not ready at %s within 2 min: %v (see controlplane-kube-apiserver.log in %s)", cp.HostURL, err, logDir(cp.t))
		}
		time.Sleep(time.Second)
	}
}

// kubectl runs the real kubectl v1.37.2 as cluster admin.
func (cp *controlPlane) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(cp.assets, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustKubectl fails the test when kubectl fails.
func (cp *controlPlane) mustKubectl(args ...string) string {
	cp.t.Helper()
	out, err := cp.kubectl(args...)
	if err != nil {
		cp.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply applies YAML with kubectl.
func (cp *controlPlane) apply(yaml string) {
	cp.t.Helper()
	f := filepath.Join(cp.dir, fmt.Sprintf("apply-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		cp.t.Fatal(err)
	}
	cp.mustKubectl("apply", "-f", f)
}

func newCA(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keso-e2e-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

func issue(t testing.TB, caKey *ecdsa.PrivateKey, ca *x509.Certificate, subj pkix.Name, ips []net.IP, dns []string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: subj, IPAddresses: ips, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func writePEM(t testing.TB, p string, b []byte) {
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randLower(t testing.TB, n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(abc))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = abc[v.Int64()]
	}
	return string(b)
}
