package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Token is a k3s-style secure token: "K10<sha256 of the cluster CA
// bundle, hex>::<bootstrap token id>.<secret>". k3s checks the CA it is
// served against the hash in the token before it sends the secret; the
// fixture does the same with Kubernetes' own discovery document (the
// kube-public/cluster-info ConfigMap, readable anonymously), then joins
// with the bootstrap token through the kubelet's TLS bootstrap.
type Token struct {
	CAHash string
	ID     string
	Secret string
}

var tokenRE = regexp.MustCompile(`^K10([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$`)

// ParseToken parses a secure token.
func ParseToken(s string) (Token, error) {
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Token{}, fmt.Errorf("token: want K10<64 hex digits>::<6-char id>.<16-char secret> (the CA hash and a bootstrap token), got %d characters", len(s))
	}
	return Token{CAHash: m[1], ID: m[2], Secret: m[3]}, nil
}

// Bearer is the bootstrap token as the API server takes it.
func (t Token) Bearer() string { return t.ID + "." + t.Secret }

// DiscoverCA fetches the cluster CA from server's cluster-info ConfigMap
// and returns its PEM bytes once their sha256 matches the token's hash.
func DiscoverCA(server string, tok Token, timeout time.Duration) ([]byte, error) {
	insecure := &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // checked against the token's hash below
	ca, err := clusterInfoCA(insecure, server)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(ca)
	if got := hex.EncodeToString(sum[:]); got != tok.CAHash {
		return nil, fmt.Errorf("discover CA at %s: the CA served hashes to %s, the token names %s: wrong server or token", server, got, tok.CAHash)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("discover CA at %s: cluster-info holds no PEM certificate", server)
	}
	// Once more, now verifying the server against that CA.
	verified := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, err := clusterInfoCA(verified, server); err != nil {
		return nil, fmt.Errorf("discover CA at %s: the server does not present a certificate of the discovered CA: %w", server, err)
	}
	return ca, nil
}

func clusterInfoCA(c *http.Client, server string) ([]byte, error) {
	url := strings.TrimSuffix(server, "/") + "/api/v1/namespaces/kube-public/configmaps/cluster-info"
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("discover CA: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discover CA: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("discover CA: %s: %w", url, err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CAData string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["kubeconfig"]), &kc); err != nil || len(kc.Clusters) == 0 || len(kc.Clusters[0].Cluster.CAData) == 0 {
		return nil, fmt.Errorf("discover CA: %s: no kubeconfig with certificate-authority-data (%v)", url, err)
	}
	ca, err := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CAData)
	if err != nil {
		return nil, fmt.Errorf("discover CA: %s: certificate-authority-data: %w", url, err)
	}
	return ca, nil
}
