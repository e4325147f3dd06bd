//go:build tools

// Package tools pins metrics-server (sigs.k8s.io/metrics-server, the version
// in go.mod) for the real-node test tier: hack/test-assets.sh builds its
// command into the test assets, and internal/realnode registers it as the
// cluster's v1beta1.metrics.k8s.io. It is a module of its own because
// metrics-server builds against other Kubernetes library versions than
// k8s.io/kubernetes in hack/tools.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
