package lab

import (
	"testing"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/lab/internal/kube"
)

// TestTestNode: a lab on lab's test-only node image is named for what it
// is in the report, never k3s; any other image says nothing.
func TestTestNode(t *testing.T) {
	t.Parallel()
	facts := map[string]string{kube.FactKubelet: "v1.37.2"}
	tests := []struct {
		name  string
		nodes []cluster.Node
		want  string
	}{
		{"rancher/k3s", []cluster.Node{{Name: "s", Role: "server", Image: "rancher/k3s:v1.33.6-k3s1"}}, ""},
		{"the test node image", []cluster.Node{
			{Name: "lb", Role: "loadbalancer", Image: "lab-test.invalid/k3d-proxy-standin:1", TestImage: "loadbalancer"},
			{Name: "s", Role: "server", Image: "lab-test.invalid/k3s-standin:abc", TestImage: "node"},
		}, "k3s-compatible test node from Kubernetes v1.37.2 parts (image lab-test.invalid/k3s-standin:abc, a test fixture: not k3s)"},
	}
	for _, tt := range tests {
		if got := testNode(&cluster.Info{Nodes: tt.nodes}, facts); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestEnvironmentOffline: an offline lab's report does not name the
// upstream charts' versions as if lab had installed them.
func TestEnvironmentOffline(t *testing.T) {
	t.Parallel()
	for _, offline := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Stack.Offline = offline
		env := New(cfg).environment("quick", "lab", false)
		want := charts.PostgresOperatorVersion
		if offline {
			want = "not installed (stack.offline)"
		}
		if got := env["chart postgres-operator"]; got != want {
			t.Errorf("offline %v: chart postgres-operator = %q, want %q", offline, got, want)
		}
		if got := env["chart chaos-mesh"]; offline && got != want {
			t.Errorf("offline: chart chaos-mesh = %q, want %q", got, want)
		}
	}
}
