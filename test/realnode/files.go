package main

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
)

// Paths of what the fixture runs (carried into the test image by the
// e2e harness, test/e2e/realnode_test.go) and where k3s keeps things.
const (
	Containerd = "/usr/bin/containerd"
	Ctr        = "/usr/bin/ctr"
	Kubelet    = "/usr/bin/kubelet"
	CNIBinDir  = "/usr/libexec/cni" // not /opt: keso mounts /opt from the state partition
	RunDir     = "/run/k3s/containerd"
	Socket     = RunDir + "/containerd.sock"
	// SandboxImage is the pause image the harness preloads.
	SandboxImage = "registry.k8s.io/pause:3.10"
	// ClusterDNS is an address in the host control plane's service range.
	ClusterDNS = "10.43.0.10"
)

// Layout is where one agent keeps its files under the data dir, at k3s's
// paths (the kubelet's kubeconfig is where keso's health gate reads it).
type Layout struct{ DataDir string }

func (l Layout) agent(p string) string     { return filepath.Join(l.DataDir, "agent", p) }
func (l Layout) KubeletKubeconfig() string { return l.agent("kubelet.kubeconfig") }
func (l Layout) BootstrapKubeconfig() string {
	return l.agent("bootstrap.kubeconfig")
}
func (l Layout) CertDir() string          { return l.agent("pki") }
func (l Layout) Images() string           { return l.agent("images") }
func (l Layout) ContainerdRoot() string   { return l.agent("containerd") }
func (l Layout) ContainerdConfig() string { return l.agent("etc/containerd/config.toml") }
func (l Layout) CNIConfDir() string       { return l.agent("etc/cni/net.d") }
func (l Layout) CNITemplate() string      { return l.agent("etc/cni/template.conflist") }
func (l Layout) KubeletConfig() string    { return l.agent("etc/kubelet.yaml") }

// ContainerdConfig is containerd 1.6's config (version 2): k3s's folders,
// runc through the v2 shim, CNI plugins from CNIBinDir, and a CNI config
// made from the pod CIDR the kubelet hands over (conf_template).
func ContainerdConfig(l Layout) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  enable_selinux = false

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "/usr/bin/runc"
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %q
  conf_dir = %q
  conf_template = %q
`, l.ContainerdRoot(), RunDir, Socket, SandboxImage, CNIBinDir, l.CNIConfDir(), l.CNITemplate())
}

// CNITemplate is a bridge network over the node's pod CIDR (containerd
// fills {{.PodCIDR}} in). Pods reach beyond the node masqueraded behind
// its address (the bridge plugin runs iptables, which the test image
// carries), as flannel does in k3s.
const CNITemplate = `{
  "cniVersion": "0.4.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
`

// KubeletConfig is the kubelet's configuration file.
func KubeletConfig(l Layout) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failSwapOn: false
rotateCertificates: true
serializeImagePulls: false
clusterDomain: cluster.local
clusterDNS: [%s]
resolvConf: /etc/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
authorization:
  mode: Webhook
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
`, Socket, ClusterDNS)
}

// BootstrapKubeconfig is the kubelet's TLS-bootstrap kubeconfig: the
// discovered CA and the bootstrap token.
func BootstrapKubeconfig(server string, ca []byte, tok Token) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k3s
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: bootstrap
  user:
    token: %s
contexts:
- name: bootstrap
  context: {cluster: k3s, user: bootstrap}
current-context: bootstrap
`, server, base64.StdEncoding.EncodeToString(ca), tok.Bearer())
}

// KubeletArgv is the kubelet's command line for a.
func KubeletArgv(a Args, l Layout) []string {
	argv := []string{Kubelet,
		"--config=" + l.KubeletConfig(),
		"--bootstrap-kubeconfig=" + l.BootstrapKubeconfig(),
		"--kubeconfig=" + l.KubeletKubeconfig(),
		"--cert-dir=" + l.CertDir(),
		"--root-dir=/var/lib/kubelet",
	}
	if a.NodeName != "" {
		argv = append(argv, "--hostname-override="+a.NodeName)
	}
	if len(a.NodeLabels) > 0 {
		argv = append(argv, "--node-labels="+strings.Join(a.NodeLabels, ","))
	}
	if len(a.NodeTaints) > 0 {
		argv = append(argv, "--register-with-taints="+strings.Join(a.NodeTaints, ","))
	}
	for _, ka := range a.KubeletArg {
		argv = append(argv, "--"+strings.TrimLeft(ka, "-"))
	}
	return argv
}
