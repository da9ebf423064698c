// Package kubenode reads and annotates the node's own Node object with the
// kubelet's credentials, without client-go (keso-init links it and must
// stay small): it parses a kubeconfig (LoadKubeconfig), then GETs
// /api/v1/nodes/<name> (its Ready condition, annotations, osImage) and
// merge-patches its annotations, over crypto/tls and net/http.
//
// k3s writes the kubelet's kubeconfig at KubeletKubeconfig on servers and
// agents alike; it names a client certificate whose subject is
// system:node:<name>, so NodeName can tell which Node is this one.
package kubenode

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Paths k3s writes.
const (
	KubeletKubeconfig = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
	AdminKubeconfig   = "/etc/rancher/k3s/k3s.yaml" // servers only
)

// Files reads node paths; host.FS implements it.
type Files interface {
	ReadFile(p string) ([]byte, error)
}

// Config is what a kubeconfig's current context says about reaching the
// API server: where, whom to trust, and who we are.
type Config struct {
	Server   string
	CA       []byte // PEM; nil: the system roots
	Insecure bool   // insecure-skip-tls-verify
	CertPEM  []byte
	KeyPEM   []byte
	Token    string
}

type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			ClientCertificate     string `yaml:"client-certificate"`
			ClientCertificateData string `yaml:"client-certificate-data"`
			ClientKey             string `yaml:"client-key"`
			ClientKeyData         string `yaml:"client-key-data"`
			Token                 string `yaml:"token"`
			TokenFile             string `yaml:"tokenFile"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// LoadKubeconfig reads the kubeconfig at file (a node path) and what its
// current context names: the cluster's server and CA, the user's client
// certificate and key or token. Relative paths in it are relative to the
// kubeconfig's folder, as kubectl resolves them. A kubeconfig with one
// cluster and one user and no current-context uses those.
func LoadKubeconfig(fsys Files, file string) (Config, error) {
	b, err := fsys.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("read kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return Config{}, fmt.Errorf("parse kubeconfig %s: %w (expected a kubectl config file: clusters, contexts, users)", file, err)
	}
	clusterName, userName := "", ""
	switch {
	case kc.CurrentContext != "":
		found := false
		for _, c := range kc.Contexts {
			if c.Name == kc.CurrentContext {
				clusterName, userName, found = c.Context.Cluster, c.Context.User, true
			}
		}
		if !found {
			return Config{}, fmt.Errorf("kubeconfig %s: current-context %q is not among its contexts", file, kc.CurrentContext)
		}
	case len(kc.Clusters) == 1 && len(kc.Users) <= 1:
		clusterName = kc.Clusters[0].Name
		if len(kc.Users) == 1 {
			userName = kc.Users[0].Name
		}
	default:
		return Config{}, fmt.Errorf("kubeconfig %s has no current-context: set one (kubectl config use-context)", file)
	}
	dir := path.Dir(file)
	read := func(field, p string) ([]byte, error) {
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		b, err := fsys.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %s: %w", file, field, err)
		}
		return b, nil
	}
	decode := func(field, s string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %s is not base64: %w", file, field, err)
		}
		return b, nil
	}
	var cfg Config
	found := false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		cfg.Server = strings.TrimRight(c.Cluster.Server, "/")
		cfg.Insecure = c.Cluster.InsecureSkipTLSVerify
		switch {
		case c.Cluster.CertificateAuthorityData != "":
			if cfg.CA, err = decode("certificate-authority-data", c.Cluster.CertificateAuthorityData); err != nil {
				return cfg, err
			}
		case c.Cluster.CertificateAuthority != "":
			if cfg.CA, err = read("certificate-authority", c.Cluster.CertificateAuthority); err != nil {
				return cfg, err
			}
		}
	}
	if !found {
		return cfg, fmt.Errorf("kubeconfig %s: cluster %q is not among its clusters", file, clusterName)
	}
	if cfg.Server == "" {
		return cfg, fmt.Errorf("kubeconfig %s: cluster %q has no server", file, clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		us := u.User
		switch {
		case us.ClientCertificateData != "":
			cfg.CertPEM, err = decode("client-certificate-data", us.ClientCertificateData)
		case us.ClientCertificate != "":
			cfg.CertPEM, err = read("client-certificate", us.ClientCertificate)
		}
		if err != nil {
			return cfg, err
		}
		switch {
		case us.ClientKeyData != "":
			cfg.KeyPEM, err = decode("client-key-data", us.ClientKeyData)
		case us.ClientKey != "":
			cfg.KeyPEM, err = read("client-key", us.ClientKey)
		}
		if err != nil {
			return cfg, err
		}
		cfg.Token = us.Token
		if cfg.Token == "" && us.TokenFile != "" {
			t, err := read("tokenFile", us.TokenFile)
			if err != nil {
				return cfg, err
			}
			cfg.Token = strings.TrimSpace(string(t))
		}
	}
	if (cfg.CertPEM == nil) != (cfg.KeyPEM == nil) {
		return cfg, fmt.Errorf("kubeconfig %s: user %q has a client certificate without a key or a key without a certificate", file, userName)
	}
	return cfg, nil
}

// NodeName is the node name in the client certificate's subject
// (system:node:<name>, as the Node authorizer requires of a kubelet), or
// "" when the credentials are not a kubelet's.
func (c Config) NodeName() string {
	blk, _ := pem.Decode(c.CertPEM)
	if blk == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return ""
	}
	name, _ := strings.CutPrefix(cert.Subject.CommonName, "system:node:")
	if name == cert.Subject.CommonName {
		return ""
	}
	return name
}

// tlsConfig builds the client's TLS settings.
func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Insecure}
	if len(c.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CA) {
			return nil, fmt.Errorf("certificate authority: no PEM certificate in it")
		}
		tc.RootCAs = pool
	}
	if c.CertPEM != nil {
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate and key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
