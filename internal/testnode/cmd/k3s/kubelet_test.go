package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// TestNodeComponentArgs checks that --kubelet-arg and --kube-proxy-arg
// replace the stand-in's own values of the same key and add new ones, as
// k3s does.
func TestNodeComponentArgs(t *testing.T) {
	t.Parallel()
	base := nodeSetup{name: "k3d-lab-agent-0", ip: "172.18.0.3", kubeconfig: "/k.yaml", bootstrapKubeconfig: "/b.yaml"}
	common := []string{
		"--config=" + agentEtcDir + "/kubelet.yaml", "--bootstrap-kubeconfig=/b.yaml", "--kubeconfig=/k.yaml",
		"--cert-dir=/var/lib/kubelet/pki", "--hostname-override=k3d-lab-agent-0",
	}
	tests := []struct {
		name           string
		labels, taints []string
		kubelet        []string
		kubeProxy      []string
		want           []string
		wantProxy      []string
	}{
		{
			name:      "defaults",
			want:      append(slices.Clone(common), "--node-ip=172.18.0.3"),
			wantProxy: []string{"--config=" + agentEtcDir + "/kube-proxy.yaml"},
		},
		{
			name:      "overridden and added",
			kubelet:   []string{"node-ip=10.0.0.9", "v=2"},
			kubeProxy: []string{"v=3"},
			want:      append(slices.Clone(common), "--node-ip=10.0.0.9", "--v=2"),
			wantProxy: []string{"--config=" + agentEtcDir + "/kube-proxy.yaml", "--v=3"},
		},
		{
			name:   "labels and taints at registration",
			labels: []string{"node.kubernetes.io/instance-type=k3s", "tier=web"},
			taints: []string{"dedicated=db:NoSchedule", "gpu:NoExecute"},
			want: append(slices.Clone(common), "--node-ip=172.18.0.3",
				"--node-labels=node.kubernetes.io/instance-type=k3s,tier=web",
				"--register-with-taints=dedicated=db:NoSchedule,gpu:NoExecute"),
			wantProxy: []string{"--config=" + agentEtcDir + "/kube-proxy.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base
			s.kubeletArgs, s.kubeProxyArgs = tt.kubelet, tt.kubeProxy
			s.labels, s.taints = tt.labels, tt.taints
			if diff := cmp.Diff(tt.want, kubeletArgs(s)); diff != "" {
				t.Errorf("kubelet arguments (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantProxy, kubeProxyArgs(s)); diff != "" {
				t.Errorf("kube-proxy arguments (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeConfigs decodes the rendered configurations and checks the
// settings this machine needs (DESIGN.md, tier 3b) and k3s's paths.
func TestNodeConfigs(t *testing.T) {
	t.Parallel()
	s := nodeSetup{
		name: "k3d-lab-server-0", ip: "172.18.0.2", podCIDR: "10.42.0.0/24", kubeconfig: "/k.yaml",
		kubeProxyKubeconfig: "/p.yaml", clientCA: "/ca.crt", pauseImage: "lab-test.invalid/pause:abc",
		resolvConf: "/etc/resolv.conf",
	}
	decode := func(t *testing.T, render func(nodeSetup) (string, error), isJSON bool) map[string]any {
		t.Helper()
		text, err := render(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if isJSON {
			err = json.Unmarshal([]byte(text), &m)
		} else {
			err = yaml.Unmarshal([]byte(text), &m)
		}
		if err != nil {
			t.Fatalf("decode:\n%s\n%v", text, err)
		}
		return m
	}
	kubelet := decode(t, kubeletConfig, false)
	for k, want := range map[string]any{
		"cgroupDriver": "cgroupfs", "failCgroupV1": false, "failSwapOn": false,
		"containerRuntimeEndpoint": "unix:///run/k3s/containerd/containerd.sock",
		"clusterDNS":               []any{"10.43.0.10"},
		"rotateCertificates":       true, "serverTLSBootstrap": true, "tlsCertFile": nil,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false}, "webhook": map[string]any{"enabled": true},
			"x509": map[string]any{"clientCAFile": "/ca.crt"},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		"resolvConf":    "/etc/resolv.conf",
	} {
		if diff := cmp.Diff(want, kubelet[k]); diff != "" {
			t.Errorf("kubelet %s (-want +got):\n%s", k, diff)
		}
	}
	proxy := decode(t, kubeProxyConfig, false)
	if proxy["mode"] != "iptables" || proxy["clusterCIDR"] != clusterCIDR || proxy["hostnameOverride"] != s.name ||
		proxy["clientConnection"].(map[string]any)["kubeconfig"] != "/p.yaml" {
		t.Errorf("kube-proxy configuration: %v", proxy)
	}
	cni := decode(t, cniConfig, true)
	if b, _ := json.Marshal(cni); !strings.Contains(string(b), `"subnet":"10.42.0.0/24"`) {
		t.Errorf("CNI configuration without the node's pod range: %s", b)
	}
	ctrd, err := containerdConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`sandbox_image = "lab-test.invalid/pause:abc"`, `restrict_oom_score_adj = true`,
		`address = "/run/k3s/containerd/containerd.sock"`, `root = "/var/lib/rancher/k3s/agent/containerd"`,
	} {
		if !strings.Contains(ctrd, want) {
			t.Errorf("containerd configuration lacks %s:\n%s", want, ctrd)
		}
	}
}

// TestPodResolvConf: the node's resolver is the pods' unless it names only
// loopback addresses (Docker's embedded DNS without k3d's DNS fix), as k3s
// decides.
func TestPodResolvConf(t *testing.T) {
	t.Parallel()
	fallback := agentEtcDir + "/resolv.conf"
	for _, tt := range []struct {
		name, host, wantPath, wantGenerated string
	}{
		{"k3d's DNS fix: the gateway", "search lan\nnameserver 172.18.0.1\noptions ndots:0\n", "/etc/resolv.conf", ""},
		{"Docker's embedded DNS", "nameserver 127.0.0.11\noptions ndots:0\n", fallback, "nameserver 8.8.8.8\n"},
		{"loopback first, then a reachable one", "nameserver 127.0.0.53\nnameserver 10.0.0.2\n", "/etc/resolv.conf", ""},
		{"IPv6 loopback", "nameserver ::1\n", fallback, "nameserver 8.8.8.8\n"},
		{"no file", "", fallback, "nameserver 8.8.8.8\n"},
		{"a comment only", "# nameserver 10.0.0.2\n", fallback, "nameserver 8.8.8.8\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path, generated := podResolvConf([]byte(tt.host))
			if path != tt.wantPath || generated != tt.wantGenerated {
				t.Errorf("podResolvConf(%q) = %q, %q; want %q, %q", tt.host, path, generated, tt.wantPath, tt.wantGenerated)
			}
		})
	}
}
