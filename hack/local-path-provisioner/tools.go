//go:build tools

// Package tools pins local-path-provisioner
// (github.com/rancher/local-path-provisioner, the version in go.mod), the
// StorageClass provisioner k3s bundles as its local-storage add-on:
// hack/test-assets.sh builds its command into the test assets, and the k3d
// node image (internal/testnode) carries it as the image the stand-in's
// local-path add-on runs. It is a module of its own because it builds
// against other Kubernetes library versions than k8s.io/kubernetes in
// hack/tools.
package tools

import _ "github.com/rancher/local-path-provisioner"
