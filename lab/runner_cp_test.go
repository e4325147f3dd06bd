package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/reports"
)

// TestRunnerOnControlPlane runs a shortened profile from preflight to report
// against the jewelry-shop chart installed on the real control plane with
// simulated nodes: a real pod kill (through the Chaos Mesh engine and the
// API, with a stand-in for Chaos Mesh's controller) and a real node stop are
// observed through the API by the real replica observer. Only the load is a
// fake, since no process runs in a simulated pod. Afterwards no chaos object
// is left. A second run, interrupted, still reports, marking the rest not run.
func TestRunnerOnControlPlane(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ns := env.Namespace(t)
	ctx := t.Context()
	kube := kubernetes.NewForConfigOrDie(env.Config)

	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	in, err := charts.NewInstaller(kubeconfig, charts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := charts.JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	// No storage provisioner here; and evict from a dead node within
	// seconds, so the shortened node failure sees it.
	rel = rel.WithValues(map[string]any{
		"redis":                        map[string]any{"persistence": map[string]any{"enabled": false}},
		"nodeFailureTolerationSeconds": 2,
	})
	rel.Namespace, rel.Timeout = ns, 3*time.Minute
	if _, err := in.Install(ctx, rel); err != nil {
		t.Fatalf("install the chart: %v", err)
	}

	scx, stopStandIn := context.WithCancel(ctx)
	defer stopStandIn()
	go controlplane.RunChaosStandIn(scx, env.Client, ns, nil)

	node, err := busiestAgent(ctx, kube, ns)
	if err != nil {
		t.Fatal(err)
	}
	targets := chartTargets(ns, StackRelease)
	targets.Node = node
	tm := chaosmesh.DefaultTiming()
	tm.NodeDown = 120 * time.Second
	p := shortProfile(chaosmesh.WebPodKill, chaosmesh.NodeFailure)
	p.Load = 300 * time.Second // scaled by 0.1: 30 s, the node down from 6 s to 18 s
	pl, err := NewPlan(p, chaosmesh.Catalogue(targets, tm))
	if err != nil {
		t.Fatal(err)
	}
	engine := chaosmesh.NewEngine(env.Client, nil)
	// No process runs in a simulated pod: the shop's health endpoint is a
	// stand-in on loopback.
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer health.Close()
	newRunner := func(w *world) *Runner {
		return NewRunner(RunnerConfig{
			Load:       fakeLoad{w: w, users: p.Users},
			Chaos:      engine,
			Nodes:      ClusterNodeFailer{Stopper: simulatedNodes{env}, Kube: kube, Namespace: ns, Poll: 200 * time.Millisecond},
			Replicas:   KubeReplicaObserver{Kube: kube, Namespace: ns, Deployment: StackRelease + "-web", HPA: StackRelease + "-web", Poll: 200 * time.Millisecond},
			Health:     KubeHealthChecks{Kube: kube, Namespace: ns},
			HealthPoll: HTTPHealthPoller{URL: health.URL + "/healthz", Interval: 500 * time.Millisecond},
			Sweep:      func(ctx context.Context) ([]string, error) { return engine.Sweep(ctx, ns) },
			RunID:      "cp", Scale: 0.1, Sustain: 500 * time.Millisecond, InjectTimeout: 20 * time.Second,
		})
	}

	run, err := newRunner(newWorld()).Run(ctx, pl)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	md := checkRenders(t, run)
	rows := requirementRows(run)
	t.Logf("R27: %s: %s (%s)", rows["R27"].Status, rows["R27"].Measured, rows["R27"].Reason)
	t.Logf("R28: %s: %s (%s)", rows["R28"].Status, rows["R28"].Measured, rows["R28"].Reason)
	if !run.Progress.Completed {
		t.Errorf("run not completed: %+v", run.Progress)
	}
	for _, id := range []string{"R27", "R28"} {
		if rows[id].Status != reports.Pass {
			t.Errorf("%s = %s (%s), want pass on the real controllers:\n%s", id, rows[id].Status, rows[id].Reason, md)
		}
	}
	// The chart gives every container both probes (its policy tests say
	// so), read here from the live objects, and the health endpoint was
	// polled all run.
	t.Logf("R33: %s: %s (%s)", rows["R33"].Status, rows["R33"].Measured, rows["R33"].Reason)
	if q := rows["R33"]; q.Status != reports.Pass || !strings.HasPrefix(q.Measured, fmt.Sprintf("%d of %d workloads have both probes", len(run.HealthChecks), len(run.HealthChecks))) || len(run.HealthChecks) < 5 {
		t.Errorf("R33 = %+v with %d workloads, want every workload probed and the endpoint polled", q, len(run.HealthChecks))
	}
	if e := experimentNamed(run, chaosmesh.WebPodKill); e == nil || e.InjectedAt.IsZero() {
		t.Errorf("the pod kill has no injection time: %+v", e)
	}
	assertNoChaosLeft(t, env.Client, ns)

	// Interrupted while the node is down: the node comes back, nothing is
	// left, and the report marks the run interrupted with the rest not run.
	ictx, cancel := context.WithCancel(ctx)
	time.AfterFunc(8*time.Second, cancel)
	run, err = newRunner(newWorld()).Run(ictx, pl)
	if err == nil || run == nil || run.Progress.Completed {
		t.Fatalf("interrupted run = %+v, %v; want a report of an interrupted run", run, err)
	}
	md = checkRenders(t, run)
	if !strings.Contains(md, "not run") {
		t.Errorf("the interrupted report marks nothing not run:\n%s", md)
	}
	assertNoChaosLeft(t, env.Client, ns)
	if err := env.WaitNodeReady(ctx, node, true, time.Minute); err != nil {
		t.Errorf("node %s not Ready after the interrupted run: %v", node, err)
	}
}

func assertNoChaosLeft(t *testing.T, c client.Client, ns string) {
	t.Helper()
	for _, list := range []client.ObjectList{&v1alpha1.PodChaosList{}, &v1alpha1.NetworkChaosList{}, &v1alpha1.StressChaosList{}} {
		if err := c.List(t.Context(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(list); n != 0 {
			t.Errorf("%d chaos objects (%T) left in %s", n, list, ns)
		}
	}
}
