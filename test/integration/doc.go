// Package integration runs keso's upgrade operator against a real
// kube-apiserver and etcd (v1.37.2, built from Go modules by
// scripts/kube-tools.sh and started through controller-runtime's envtest).
// The operator runs as a separate process (this test binary re-executed),
// so a test can SIGKILL it mid-rollout; a node simulator in the test plays
// the kubelet's part: it runs the upgrade Jobs by flipping the node's
// osImage and boot ID (or rolling back, failing, or never returning) and
// finishes evicted pods.
//
// The binaries are found through KUBEBUILDER_ASSETS or
// `scripts/kube-tools.sh --print-dir`. When they are missing the tests fail
// under CI=true and skip loudly elsewhere.
package integration
