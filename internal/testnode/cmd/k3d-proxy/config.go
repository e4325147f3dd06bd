package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// lbConfig is the file k3d writes to /etc/confd/values.yaml (k3d's
// types.LoadbalancerConfig; k3d-proxy renders it into nginx's stream
// configuration): each "<port>.<protocol>" key lists the node containers
// that port is forwarded to, on the same port.
type lbConfig struct {
	Ports    map[string][]string `json:"ports"`
	Settings lbSettings          `json:"settings"`
}

type lbSettings struct {
	// WorkerConnections bounds the connections open at once (nginx's
	// worker_connections).
	WorkerConnections int `json:"workerConnections"`
	// DefaultProxyTimeout is nginx's proxy_timeout in seconds; k3d leaves
	// it unset, and the stand-in refuses any other value.
	DefaultProxyTimeout int `json:"defaultProxyTimeout,omitempty"`
}

// route is one listening port and the upstream hosts it forwards to.
type route struct {
	port      int
	upstreams []string
}

// parseConfig reads k3d's load balancer configuration. It fails on what the
// stand-in cannot do (UDP) and on anything it does not understand, rather
// than forwarding less than k3d asked for.
func parseConfig(b []byte) ([]route, lbSettings, error) {
	var c lbConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, lbSettings{}, fmt.Errorf("parse the load balancer configuration: %w", err)
	}
	if c.Settings.WorkerConnections < 0 {
		return nil, lbSettings{}, fmt.Errorf("load balancer settings: workerConnections %d must not be negative", c.Settings.WorkerConnections)
	}
	if c.Settings.DefaultProxyTimeout != 0 {
		return nil, lbSettings{}, fmt.Errorf("load balancer settings: defaultProxyTimeout %d is not supported by the stand-in (connections are never timed out)", c.Settings.DefaultProxyTimeout)
	}
	var routes []route
	for key, upstreams := range c.Ports {
		p, proto, ok := strings.Cut(key, ".")
		port, err := strconv.Atoi(p)
		if !ok || err != nil || port < 1 || port > 65535 {
			return nil, lbSettings{}, fmt.Errorf("load balancer port %q: want <port>.<protocol>, e.g. 6443.tcp", key)
		}
		if proto != "tcp" {
			return nil, lbSettings{}, fmt.Errorf("load balancer port %q: the stand-in forwards TCP only", key)
		}
		if len(upstreams) == 0 {
			return nil, lbSettings{}, fmt.Errorf("load balancer port %q: no upstream nodes", key)
		}
		for _, u := range upstreams {
			if u == "" || strings.ContainsAny(u, ":/ ") {
				return nil, lbSettings{}, fmt.Errorf("load balancer port %q: upstream %q is not a node name", key, u)
			}
		}
		routes = append(routes, route{port: port, upstreams: slices.Clone(upstreams)})
	}
	if len(routes) == 0 {
		return nil, lbSettings{}, fmt.Errorf("the load balancer configuration forwards no port")
	}
	slices.SortFunc(routes, func(a, b route) int { return a.port - b.port })
	return routes, c.Settings, nil
}
