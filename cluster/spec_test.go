package cluster

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
)

func testSpec() Spec {
	return Spec{
		Name:              "jewelry-shop",
		Servers:           1,
		Agents:            2,
		Image:             "docker.io/rancher/k3s:v1.33.6-k3s1",
		LoadBalancerImage: "ghcr.io/k3d-io/k3d-proxy:5.9.0",
		ToolsImage:        "ghcr.io/k3d-io/k3d-tools:5.9.0",
		APIHost:           "127.0.0.1",
		APIPort:           6550,
		IngressHost:       "127.0.0.1",
		IngressPort:       8080,
		ServerArgs:        []string{"--kube-apiserver-arg=default-not-ready-toleration-seconds=30"},
	}
}

// TestClusterConfig passes the spec through k3d's own transformation,
// processing and validation (no Docker needed) and checks what k3d made of it.
func TestClusterConfig(t *testing.T) {
	t.Parallel()
	cc, err := testSpec().clusterConfig(context.Background(), runtimes.Docker)
	if err != nil {
		t.Fatalf("clusterConfig: %v", err)
	}
	var got []string
	for _, n := range cc.Nodes {
		got = append(got, string(n.Role)+" "+n.Name+" "+n.Image)
	}
	want := []string{
		"loadbalancer k3d-jewelry-shop-serverlb ghcr.io/k3d-io/k3d-proxy:5.9.0",
		"server k3d-jewelry-shop-server-0 docker.io/rancher/k3s:v1.33.6-k3s1",
		"agent k3d-jewelry-shop-agent-0 docker.io/rancher/k3s:v1.33.6-k3s1",
		"agent k3d-jewelry-shop-agent-1 docker.io/rancher/k3s:v1.33.6-k3s1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if cc.Network.Name != "k3d-jewelry-shop" {
		t.Errorf("network = %q, want k3d-jewelry-shop", cc.Network.Name)
	}
	api := cc.KubeAPI
	if api.Binding.HostIP != "127.0.0.1" || api.Binding.HostPort != "6550" {
		t.Errorf("API bound to %s:%s, want 127.0.0.1:6550", api.Binding.HostIP, api.Binding.HostPort)
	}
	for _, n := range cc.Nodes {
		switch n.Role {
		case k3d.LoadBalancerRole:
			if !hasIngressPort(n, "127.0.0.1", "8080", "80/tcp") {
				t.Errorf("load balancer ports = %v, want 127.0.0.1:8080 -> 80/tcp", n.Ports)
			}
		case k3d.ServerRole:
			if !strings.Contains(strings.Join(n.Args, " "), "default-not-ready-toleration-seconds=30") {
				t.Errorf("server args = %v, want the toleration argument", n.Args)
			}
		case k3d.AgentRole:
			if strings.Contains(strings.Join(n.Args, " "), "kube-apiserver-arg") {
				t.Errorf("agent %s got server args %v", n.Name, n.Args)
			}
		}
		if n.RuntimeLabels[ManagedByLabel] != ManagedByValue {
			t.Errorf("node %s labels = %v, want %s=%s", n.Name, n.RuntimeLabels, ManagedByLabel, ManagedByValue)
		}
	}
	if !cc.ClusterCreateOpts.WaitForServer {
		t.Error("WaitForServer is off")
	}
}

func hasIngressPort(n *k3d.Node, host, hostPort, containerPort string) bool {
	for port, bindings := range n.Ports {
		if string(port) != containerPort {
			continue
		}
		for _, b := range bindings {
			if b.HostIP == host && b.HostPort == hostPort {
				return true
			}
		}
	}
	return false
}

// TestClusterConfigRejected checks that k3d's own validation catches what our
// configuration validation would also catch, and that its message survives.
func TestClusterConfigRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"invalid name", func(s *Spec) { s.Name = "Bad_Name" }, "Bad_Name"},
		{"name too long", func(s *Spec) { s.Name = strings.Repeat("a", 70) }, "does not match requirements"},
		{"bad ingress address", func(s *Spec) { s.IngressHost = "not-an-ip" }, "not-an-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSpec()
			tt.modify(&s)
			_, err := s.clusterConfig(context.Background(), runtimes.Docker)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("clusterConfig error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestImages(t *testing.T) {
	t.Parallel()
	want := []string{"docker.io/rancher/k3s:v1.33.6-k3s1", "ghcr.io/k3d-io/k3d-proxy:5.9.0", "ghcr.io/k3d-io/k3d-tools:5.9.0"}
	if diff := cmp.Diff(want, testSpec().Images()); diff != "" {
		t.Errorf("Images (-want +got):\n%s", diff)
	}
}
