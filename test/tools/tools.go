//go:build tools

// Package tools pins the Kubernetes commands that keso's integration tests
// run: kube-apiserver, kubectl, kube-controller-manager, kube-scheduler and
// kubelet v1.37.2, built from Go modules by
// scripts/kube-tools.sh. It is a separate module so that its very large
// dependency graph never enters the main keso module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
