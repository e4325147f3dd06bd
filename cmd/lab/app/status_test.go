package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/golden"
	"github.com/jewelry-shop/lab/lab"
)

// TestPrintStatus compares `lab status`'s output for each state of a lab
// with testdata/status/<name>.golden (rewritten with -update).
func TestPrintStatus(t *testing.T) {
	t.Parallel()
	containers := []cluster.Node{
		{Name: "k3d-lab-server-0", Role: "server", Running: true, Status: "running"},
		{Name: "k3d-lab-agent-0", Role: "agent", Running: true, Status: "running"},
		{Name: "k3d-lab-agent-1", Role: "agent", Running: false, Status: "exited"},
		{Name: "k3d-lab-serverlb", Role: "loadbalancer", Running: true, Status: "running"},
	}
	nodes := []cluster.NodeStatus{
		{Name: "k3d-lab-server-0", Ready: true},
		{Name: "k3d-lab-agent-0", Ready: true},
		{Name: "k3d-lab-agent-1", Reason: "NodeStatusUnknown"},
	}
	base := func() *lab.Status {
		return &lab.Status{
			Cluster: "lab", Exists: true, Managed: true, Containers: containers, Nodes: nodes,
			Kubeconfig: "/home/dev/.config/lab/kubeconfig", APIServer: "https://127.0.0.1:6550", IngressURL: "http://127.0.0.1:8080",
		}
	}
	offline := base()
	offline.Installed = []string{"jewelry-shop (jewelry-shop, revision 1)"}
	offline.NotInstalled = charts.NotInstalledOffline()
	offline.Stack = lab.Readiness{Checks: []lab.Check{
		{Name: "PostgreSQL", OK: true, Detail: "not the postgres-operator's (no postgresql jewelry-shop-db); Service jewelry-shop-db has ready endpoints [10.42.1.7:5432]"},
		{Name: "Redis Sentinel", OK: false, Detail: "sentinel of jewelry-shop-redis-2 does not answer"},
	}}
	empty := base()
	foreign := base()
	foreign.Managed = false
	foreign.Problem, foreign.Fix = "was not created by lab", "lab down --force removes it"
	tests := map[string]*lab.Status{
		"missing": {Cluster: "lab"},
		"empty":   empty,
		"offline": offline,
		"foreign": foreign,
	}
	for name, st := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			printStatus(&b, st)
			golden.Check(t, filepath.Join("testdata", "status", name+".golden"), []byte(b.String()), *update)
		})
	}
}
