package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/lab"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// k3dEnv is what k3d sets on every node (K3S_URL on agents only).
func k3dEnv(role string) map[string]string {
	e := map[string]string{"K3S_TOKEN": "AbCdEfGhIjKlMnOpQrSt", "K3S_KUBECONFIG_OUTPUT": "/output/kubeconfig.yaml"}
	if role == agent {
		e["K3S_URL"] = "https://k3d-jewelry-shop-server-0:6443"
	}
	return e
}

// TestParseArgsAcceptsK3dAndLab parses the command lines k3d v5.9.0 builds
// for lab's cluster (node.go patchServerSpec: --tls-san for the API host and
// the server load balancer; --node-label for k3s node labels) with lab's
// default server arguments, in both flag spellings.
func TestParseArgsAcceptsK3dAndLab(t *testing.T) {
	t.Parallel()
	labArgs := lab.DefaultConfig().Cluster.ServerArgs
	if len(labArgs) == 0 {
		t.Fatal("lab passes no server arguments: the test would prove nothing")
	}
	spaced := func(args []string) []string { // --flag=value -> --flag value
		var out []string
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			out = append(out, k, v)
		}
		return out
	}
	// What the stand-in must pass on to each component: the values of
	// lab's own --kube-*-arg flags, whatever lab sets them to.
	var apiserverArgs, controllerManagerArgs []string
	for _, a := range labArgs {
		if v, ok := strings.CutPrefix(a, "--kube-apiserver-arg="); ok {
			apiserverArgs = append(apiserverArgs, v)
		}
		if v, ok := strings.CutPrefix(a, "--kube-controller-manager-arg="); ok {
			controllerManagerArgs = append(controllerManagerArgs, v)
		}
	}
	want := config{
		role:                  server,
		token:                 "AbCdEfGhIjKlMnOpQrSt",
		kubeconfigOutput:      "/output/kubeconfig.yaml",
		tlsSANs:               []string{"127.0.0.1", "k3d-jewelry-shop-serverlb"},
		apiserverArgs:         apiserverArgs,
		controllerManagerArgs: controllerManagerArgs,
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{
			name: "server as k3d starts it for lab",
			args: append([]string{"server", "--tls-san", "127.0.0.1", "--tls-san", "k3d-jewelry-shop-serverlb"}, labArgs...),
			env:  k3dEnv(server),
			want: want,
		},
		{
			name: "server with every value after its flag",
			args: append([]string{"server", "--tls-san=127.0.0.1", "--tls-san=k3d-jewelry-shop-serverlb"}, spaced(labArgs)...),
			env:  k3dEnv(server),
			want: want,
		},
		{
			name: "agent as k3d starts it",
			args: []string{"agent"},
			env:  k3dEnv(agent),
			want: config{role: agent, token: "AbCdEfGhIjKlMnOpQrSt", kubeconfigOutput: "/output/kubeconfig.yaml", serverURL: "https://k3d-jewelry-shop-server-0:6443"},
		},
		{
			name: "node labels, taints and names, short flags win over the environment",
			args: []string{"agent", "--node-label", "tier=web", "--node-label=zone=a", "--node-taint", "dedicated=db:NoSchedule", "--node-name", "n1", "-t", "flagtoken", "-s", "https://elsewhere:6443"},
			env:  k3dEnv(agent),
			want: config{
				role: agent, token: "flagtoken", kubeconfigOutput: "/output/kubeconfig.yaml", serverURL: "https://elsewhere:6443",
				nodeName: "n1", nodeLabels: []string{"tier=web", "zone=a"}, nodeTaints: []string{"dedicated=db:NoSchedule"},
			},
		},
		{
			name: "the node's own components' arguments",
			args: []string{"agent", "--kubelet-arg=max-pods=50", "--kube-proxy-arg", "v=2"},
			env:  k3dEnv(agent),
			want: config{
				role: agent, token: "AbCdEfGhIjKlMnOpQrSt", kubeconfigOutput: "/output/kubeconfig.yaml", serverURL: "https://k3d-jewelry-shop-server-0:6443",
				kubeletArgs: []string{"max-pods=50"}, kubeProxyArgs: []string{"v=2"},
			},
		},
		{
			name: "other component arguments and disabled components",
			args: []string{"server", "--kube-scheduler-arg", "v=2", "--etcd-arg=quota-backend-bytes=1073741824", "--disable=traefik,servicelb", "--disable", "metrics-server", "--write-kubeconfig-mode", "0644", "--write-kubeconfig=/tmp/k.yaml"},
			env:  k3dEnv(server),
			want: config{
				role: server, token: "AbCdEfGhIjKlMnOpQrSt", kubeconfigOutput: "/tmp/k.yaml", kubeconfigMode: "0644",
				schedulerArgs: []string{"v=2"}, etcdArgs: []string{"quota-backend-bytes=1073741824"},
				disable: []string{"traefik", "servicelb", "metrics-server"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseArgs(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("parseArgs(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestParseArgsRefuses checks that what the stand-in cannot do fails with a
// message that says what is wrong, instead of being ignored.
func TestParseArgsRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string // substrings of the error
	}{
		{"unknown flag", []string{"server", "--flannel-backend=none"}, k3dEnv(server), []string{`unknown flag "--flannel-backend"`, "accepts only", "--tls-san", "--kube-apiserver-arg"}},
		{"unknown flag with a value after it", []string{"server", "--data-dir", "/x"}, k3dEnv(server), []string{`unknown flag "--data-dir"`}},
		{"server-only flag on an agent", []string{"agent", "--tls-san", "x"}, k3dEnv(agent), []string{`unknown flag "--tls-san"`, "k3s agent"}},
		{"agent-only flag on a server", []string{"server", "--server", "https://x:6443"}, k3dEnv(server), []string{`unknown flag "--server"`}},
		{"embedded etcd cluster", []string{"server", "--cluster-init"}, k3dEnv(server), []string{"--cluster-init is not supported", "exactly one server"}},
		{"a server joining another", []string{"server"}, map[string]string{"K3S_TOKEN": "t", "K3S_URL": "https://k3d-x-server-0:6443"}, []string{"K3S_URL", "exactly one server"}},
		{"kubelet argument with dashes", []string{"agent", "--kubelet-arg=--max-pods=50"}, k3dEnv(agent), []string{"--kubelet-arg", "without leading dashes"}},
		{"missing value", []string{"server", "--tls-san"}, k3dEnv(server), []string{"--tls-san needs a value"}},
		{"component argument with dashes", []string{"server", "--kube-apiserver-arg=--v=2"}, k3dEnv(server), []string{"without leading dashes"}},
		{"label without value", []string{"agent", "--node-label", "tier"}, k3dEnv(agent), []string{"want key=value"}},
		{"bad taint effect", []string{"agent", "--node-taint", "a=b:Sometimes"}, k3dEnv(agent), []string{"effect must be"}},
		{"unknown component to disable", []string{"server", "--disable=flannel"}, k3dEnv(server), []string{`unknown component "flannel"`}},
		{"positional argument", []string{"server", "extra"}, k3dEnv(server), []string{`unexpected argument "extra"`}},
		{"no token", []string{"server"}, map[string]string{}, []string{"no token", "K3S_TOKEN"}},
		{"agent without server", []string{"agent"}, map[string]string{"K3S_TOKEN": "t"}, []string{"no server", "K3S_URL"}},
		{"unknown command", []string{"kubectl", "get", "nodes"}, k3dEnv(server), []string{"usage: k3s server|agent"}},
		{"no command", nil, k3dEnv(server), []string{"usage: k3s server|agent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseArgs(tt.args, env(tt.env))
			if err == nil {
				t.Fatalf("parseArgs(%q) = nil error, want one saying %q", tt.args, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("parseArgs(%q) error %q does not say %q", tt.args, err, w)
				}
			}
		})
	}
}

func TestComponentArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		defaults, extra []string
		want            []string
	}{
		{"defaults only", []string{"a=1", "b=2"}, nil, []string{"--a=1", "--b=2"}},
		{"an extra argument replaces its default in place", []string{"a=1", "b=2"}, []string{"a=9"}, []string{"--a=9", "--b=2"}},
		{"new keys are appended in order", []string{"a=1"}, []string{"c=3", "b=2"}, []string{"--a=1", "--c=3", "--b=2"}},
		{"the last of repeated keys wins", nil, []string{"v=1", "v=2"}, []string{"--v=2"}},
		{"a flag without value", []string{"a=1"}, []string{"profiling"}, []string{"--a=1", "--profiling"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, componentArgs(tt.defaults, tt.extra)); diff != "" {
				t.Errorf("componentArgs (-want +got):\n%s", diff)
			}
		})
	}
}
