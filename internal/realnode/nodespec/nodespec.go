// Package nodespec is what internal/realnode tells cmd/labnode about one real
// node: its network, the mounts that keep its state private, the kernel
// settings it must not change on the host, the images it starts with and the
// daemons it runs. realnode writes it as JSON; labnode reads it.
package nodespec

import (
	"encoding/json"
	"fmt"
	"os"
)

// Spec describes one node.
type Spec struct {
	// Name is the node's name in Kubernetes and its host name.
	Name string `json:"name"`
	// Address is the node's address with its prefix on eth0, e.g.
	// 198.18.0.10/24; the link comes from the test's bridge.
	Address string `json:"address"`
	// Routes lead to the other nodes' pod ranges. There is no default
	// route: nothing a node runs can reach beyond the test's bridge.
	Routes []Route `json:"routes,omitempty"`
	// Tmpfs are the directories that get a tmpfs of the node's own, so
	// that what the node's daemons keep there (containerd's images and
	// state, the kubelet's pods, CNI's leases, logs, network namespaces)
	// is never on the host and disappears with the node.
	Tmpfs []Tmpfs `json:"tmpfs,omitempty"`
	// Sysctls are written (path under /proc/sys, value) once the network is
	// up; only settings of the node's own network namespace belong here.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Masked are /proc/sys files (path under /proc/sys) that the node's
	// processes see with the given content, read-only: the kernel settings
	// the kubelet sets when they differ (vm.overcommit_memory, kernel.panic,
	// ...), which are the host's and must stay as they are.
	Masked map[string]string `json:"masked,omitempty"`
	// Socket is containerd's socket; Ctr the ctr binary; Import the image
	// archives (docker-archive tarballs) imported into containerd's k8s.io
	// namespace before the kubelet starts.
	Socket string   `json:"socket"`
	Ctr    string   `json:"ctr"`
	Import []string `json:"import,omitempty"`
	// Containerd, Kubelet and KubeProxy are started in this order, the
	// kubelet once containerd answers on Socket and the images are in.
	Containerd Daemon `json:"containerd"`
	Kubelet    Daemon `json:"kubelet"`
	KubeProxy  Daemon `json:"kubeProxy"`
	// LogDir holds every daemon's output, <name>.log.
	LogDir string `json:"logDir"`
}

// Route is a route to To through the neighbour Via.
type Route struct {
	To  string `json:"to"`
	Via string `json:"via"`
}

// Tmpfs is a tmpfs of Size (e.g. "4g") on Path.
type Tmpfs struct {
	Path string `json:"path"`
	Size string `json:"size"`
}

// Daemon is a program the node runs for as long as it lives.
type Daemon struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
}

// Write writes the spec to path.
func Write(path string, s Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the spec of node %s: %w", s.Name, err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write the spec of node %s: %w", s.Name, err)
	}
	return nil
}

// Read reads a spec that Write wrote.
func Read(path string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read the node spec: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode the node spec %s: %w", path, err)
	}
	return s, nil
}
