// Package kwokstages holds the kwok Stage configuration that simulates the
// kubelets of lab's test nodes, shared by the test control plane and the k3s
// stand-in of the test node images. It imports nothing, so that the stand-in
// binary does not pull in test code.
package kwokstages

import _ "embed"

//go:embed kwok-stages.yaml
var stages []byte

// YAML returns the stages as a kwok configuration file (a multi-document
// YAML stream of kwok.x-k8s.io/v1alpha1 Stage objects).
func YAML() []byte {
	return append([]byte(nil), stages...)
}
