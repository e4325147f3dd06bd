//go:build tools

// Package tools pins the binaries of the test control plane (tier 3 of the
// verification in DESIGN.md): kube-apiserver, kube-controller-manager and
// kube-scheduler from k8s.io/kubernetes, etcd, kwok and controller-gen.
//
// It is a module of its own so that the main module never depends on
// k8s.io/kubernetes. hack/test-assets.sh builds the binaries from here; the
// versions are the ones required in go.mod and must match the version
// strings in hack/test-assets.sh and internal/controlplane/assets.go.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
