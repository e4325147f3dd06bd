// Package cni writes the CNI network configuration of the test-only real
// nodes (internal/realnode and the k3s stand-in of internal/testnode): a
// bridge over the node's pod range with host-local addresses and host ports.
package cni

import (
	"encoding/json"
	"fmt"
)

// Bridge returns the conflist of a network called name: a bridge cni0 with
// the gateway on the node over podCIDR, masquerading what leaves the node
// when masquerade is set, and the portmap plugin for host ports.
func Bridge(name, podCIDR string, masquerade bool) (string, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": masquerade, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": podCIDR}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode the CNI configuration: %w", err)
	}
	return string(b) + "\n", nil
}
