package lab

import (
	"strings"
	"testing"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
)

func TestDefaultConfigIsValid(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // every one must appear in the error
	}{
		{"bad name", func(c *Config) { c.Cluster.Name = "Jewelry_Shop" }, []string{`cluster.name: "Jewelry_Shop" is not a valid cluster name`}},
		{"name with trailing dash", func(c *Config) { c.Cluster.Name = "shop-" }, []string{"cluster.name"}},
		{"no servers", func(c *Config) { c.Cluster.Servers = 0 }, []string{"cluster.servers: must be between 1 and 3, got 0"}},
		{"negative agents", func(c *Config) { c.Cluster.Agents = -1 }, []string{"cluster.agents: must be between 0 and 9, got -1"}},
		{"latest image", func(c *Config) { c.Cluster.Image = "rancher/k3s:latest" }, []string{"cluster.image", "latest tag"}},
		{"untagged image", func(c *Config) { c.Cluster.Image = "rancher/k3s" }, []string{"cluster.image", "has no tag"}},
		{"registry port is not a tag", func(c *Config) { c.Cluster.Image = "127.0.0.1:5000/k3s" }, []string{"has no tag"}},
		{"unpinned helpers", func(c *Config) { c.Cluster.HelperImageTag = "latest" }, []string{"cluster.helperImageTag"}},
		{"unpinned load balancer", func(c *Config) { c.Cluster.LoadBalancerImage = "mirror.local/k3d-proxy" }, []string{"cluster.loadBalancerImage", "has no tag"}},
		{"latest tools", func(c *Config) { c.Cluster.ToolsImage = "mirror.local/k3d-tools:latest" }, []string{"cluster.toolsImage", "latest tag"}},
		{"host name instead of IP", func(c *Config) { c.Cluster.IngressHost = "localhost" }, []string{`cluster.ingressHost: "localhost" is not an IP address`}},
		{"port out of range", func(c *Config) { c.Cluster.IngressPort = 70000 }, []string{"cluster.ingressPort: must be a TCP port between 1 and 65535, got 70000"}},
		{"same ports", func(c *Config) { c.Cluster.IngressPort = c.Cluster.APIPort }, []string{"must differ from cluster.apiPort"}},
		{"arg without dashes", func(c *Config) { c.Cluster.ServerArgs = []string{"disable=traefik"} }, []string{"cluster.serverArgs[0]"}},
		{"zero timeout", func(c *Config) { c.Cluster.ReadyTimeout = 0 }, []string{"cluster.readyTimeout"}},
		{"bad memory", func(c *Config) { c.Preflight.MinMemory = "lots" }, []string{`preflight.minMemory: "lots" is not a size`}},
		{"every problem at once", func(c *Config) {
			c.Cluster.Name, c.Cluster.Servers, c.Cluster.CreateTimeout = "", 9, -time.Second
		}, []string{"cluster.name", "cluster.servers", "cluster.createTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestPinnedImages(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{
		"docker.io/rancher/k3s:v1.33.6-k3s1",
		"127.0.0.1:5999/rancher/k3s:v1.33.6-k3s1",
		"rancher/k3s@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	} {
		if err := checkPinnedImage(ref); err != nil {
			t.Errorf("checkPinnedImage(%q) = %v, want nil", ref, err)
		}
	}
}

// TestHelperImages: k3d's helper images follow cluster.helperImageTag unless
// named in full (a mirror, an air-gapped registry), and lab up pulls and
// lab images lists what is configured.
func TestHelperImages(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		modify   func(*ClusterConfig)
		lb, tool string
	}{
		{"default", func(*ClusterConfig) {}, "ghcr.io/k3d-io/k3d-proxy:5.9.0", "ghcr.io/k3d-io/k3d-tools:5.9.0"},
		{"tag", func(c *ClusterConfig) { c.HelperImageTag = "5.8.3" }, "ghcr.io/k3d-io/k3d-proxy:5.8.3", "ghcr.io/k3d-io/k3d-tools:5.8.3"},
		{"mirror", func(c *ClusterConfig) {
			c.LoadBalancerImage, c.ToolsImage = "registry.internal:5000/k3d-proxy:5.9.0", "registry.internal:5000/k3d-tools:5.9.0"
		}, "registry.internal:5000/k3d-proxy:5.9.0", "registry.internal:5000/k3d-tools:5.9.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			tt.modify(&cfg.Cluster)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			imgs := New(cfg).spec().Images()
			if imgs[1] != tt.lb || imgs[2] != tt.tool {
				t.Errorf("images %v, want load balancer %s and tools %s", imgs, tt.lb, tt.tool)
			}
		})
	}
}

// TestNodeFailureMargins: the default k3s arguments leave a loaded node room
// to miss heartbeats, and the node failure still fits its hold and its
// threshold. The kubelet renews its lease every 10 s; under load and
// stress a laptop can miss two renewals, which must not mark a healthy
// node NotReady (and evict its pods). Detection (the grace period), the
// web pods' eviction toleration and a pod's start must fit in the time the
// node is held down and in R28's threshold.
func TestNodeFailureMargins(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	grace := cfg.Cluster.nodeMonitorGracePeriod()
	const renewal, missable, podStart = 10 * time.Second, 2, 20 * time.Second
	if grace <= missable*renewal+renewal/2 {
		t.Errorf("node-monitor-grace-period %s: %d missed %s renewals mark a healthy node NotReady", grace, missable, renewal)
	}
	s, err := New(testConfig(t)).stackSettings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	detect := grace + s.NodeFailureToleration + podStart
	if down := chaosmesh.DefaultTiming().NodeDown; detect > down {
		t.Errorf("grace %s + toleration %s + pod start %s = %s, longer than the node is held down (%s)", grace, s.NodeFailureToleration, podStart, detect, down)
	}
	if limit := DefaultThresholds().NodeRecovery; detect > limit {
		t.Errorf("grace %s + toleration %s + pod start %s = %s, over R28's threshold %s", grace, s.NodeFailureToleration, podStart, detect, limit)
	}
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"--kube-controller-manager-arg=node-monitor-grace-period=45s", "--disable=traefik"}, 45 * time.Second},
		{[]string{"--kube-controller-manager-arg=node-monitor-grace-period=soon"}, 0},
	} {
		if got := (ClusterConfig{ServerArgs: tt.args}).nodeMonitorGracePeriod(); got != tt.want {
			t.Errorf("nodeMonitorGracePeriod(%v) = %s, want %s", tt.args, got, tt.want)
		}
	}
}
