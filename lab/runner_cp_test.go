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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/lab/internal/kube"
	"github.com/jewelry-shop/lab/reports"
)

// TestRunnerOnControlPlane runs a shortened profile from preflight to report
// against the jewelry-shop chart installed on the real control plane with
// simulated nodes, wired by runnerConfig exactly as `lab validate` wires it:
// a real pod kill (through the Chaos Mesh engine and the API, with a stand-in
// for Chaos Mesh's controller) and a real node stop are observed through the
// API by the real replica observer; the live workloads' probes are read and
// the health endpoint polled. Only what needs a process in a pod stands in:
// the load, the health endpoint and the stack's readiness. Afterwards no
// chaos object is left. A second run, interrupted, still reports, marking the
// rest not run.
func TestRunnerOnControlPlane(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ns := StackNamespace
	createNamespace(t, cs, ns)
	createNamespace(t, cs, charts.ChaosMeshNamespace)
	chaosMeshStandIn(t, cs)

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
	rel.Timeout = 3 * time.Minute
	if _, err := in.Install(ctx, rel); err != nil {
		t.Fatalf("install the chart: %v", err)
	}

	scx, stopStandIn := context.WithCancel(ctx)
	defer stopStandIn()
	go controlplane.RunChaosStandIn(scx, env.Client, ns, nil)

	// No process runs in a simulated pod: the shop's health endpoint is a
	// stand-in on loopback.
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer health.Close()
	p := shortProfile(chaosmesh.WebPodKill, chaosmesh.NodeFailure)
	p.Load = 300 * time.Second // scaled by 0.1: 30 s, the node down from 6 s to 15 s
	stopper := &namingStopper{ClusterNodes: controlplane.ClusterNodes{Env: env}}
	l := New(testConfig(t))
	newRunner := func(w *world) (*Runner, *Plan) {
		cfg, pl, err := l.runnerConfig(ctx, validationTarget{
			name: "simulated", kubeconfig: kubeconfig, shopURL: "http://127.0.0.1:1", shopHost: "127.0.0.1",
			probe: readyProbe{}, load: fakeLoad{w: w, users: p.Users}, healthURL: health.URL + "/healthz", stopper: stopper,
		}, validationRun{profile: p, runID: "cp", now: time.Now})
		if err != nil {
			t.Fatalf("runnerConfig: %v", err)
		}
		// Only time is shortened; everything else is the command's wiring.
		cfg.Scale, cfg.Sustain, cfg.InjectTimeout = 0.1, 500*time.Millisecond, 20*time.Second
		cfg.Nodes = shortPoll(cfg.Nodes)
		cfg.Replicas = shortPollReplicas(cfg.Replicas)
		return NewRunner(cfg), pl
	}

	r, pl := newRunner(newWorld())
	run, err := r.Run(ctx, pl)
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
	if len(stopper.clusters) == 0 || stopper.clusters[0] != "simulated" {
		t.Errorf("node failure stopped nodes of clusters %v, want the target's, simulated", stopper.clusters)
	}
	// The chart gives every container both probes (its policy tests say
	// so), read here from the live objects by the command's wiring, and the
	// health endpoint was polled all run.
	t.Logf("R33: %s: %s (%s)", rows["R33"].Status, rows["R33"].Measured, rows["R33"].Reason)
	if q := rows["R33"]; q.Status != reports.Pass || !strings.HasPrefix(q.Measured, fmt.Sprintf("%d of %d workloads have both probes", len(run.HealthChecks), len(run.HealthChecks))) || len(run.HealthChecks) < 5 {
		t.Errorf("R33 = %+v with %d workloads, want every workload probed and the endpoint polled", q, len(run.HealthChecks))
	}
	if e := experimentNamed(run, chaosmesh.WebPodKill); e == nil || e.InjectedAt.IsZero() {
		t.Errorf("the pod kill has no injection time: %+v", e)
	}
	// The node failure's figures depend on the release's values as
	// deployed (the test installed 2 s tolerations, not the chart's 20 s);
	// this cluster's node-monitor-grace-period is not lab's to know.
	if e := experimentNamed(run, chaosmesh.NodeFailure); e == nil || len(e.DependsOn) != 1 ||
		e.DependsOn[0].Name != "nodeFailureTolerationSeconds" || e.DependsOn[0].Value != "2s" ||
		!strings.Contains(strings.Join(e.Notes, "\n"), "node-monitor-grace-period") {
		t.Errorf("node failure depends on %+v (notes %q), want the deployed toleration of 2s and a note on the unknown grace period", e.DependsOn, e.Notes)
	}
	// The node failure spared the prober's node.
	probes, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=probe"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probes.Items {
		if e := experimentNamed(run, chaosmesh.NodeFailure); e != nil && e.Target == "node "+p.Spec.NodeName {
			t.Errorf("node failure stopped %s, where the prober %s runs", p.Spec.NodeName, p.Name)
		}
	}
	assertNoChaosLeft(t, env.Client, ns)

	// Interrupted while the node is down: the node comes back, nothing is
	// left, and the report marks the run interrupted with the rest not run.
	ictx, cancel := context.WithCancel(ctx)
	time.AfterFunc(8*time.Second, cancel)
	r, pl = newRunner(newWorld())
	run, err = r.Run(ictx, pl)
	if err == nil || run == nil || run.Progress.Completed {
		t.Fatalf("interrupted run = %+v, %v; want a report of an interrupted run", run, err)
	}
	md = checkRenders(t, run)
	if !strings.Contains(md, "not run") {
		t.Errorf("the interrupted report marks nothing not run:\n%s", md)
	}
	assertNoChaosLeft(t, env.Client, ns)
	for _, node := range env.Nodes() {
		if err := env.WaitNodeReady(ctx, node, true, time.Minute); err != nil {
			t.Errorf("node %s not Ready after the interrupted run: %v", node, err)
		}
	}
}

// TestRunnerConfigOnAnotherCluster: validating a cluster lab did not create
// wires no node failure, and says why, rather than stopping a node of the
// lab's own cluster name; every other capability is wired.
func TestRunnerConfigOnAnotherCluster(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	p := shortProfile(chaosmesh.WebPodKill, chaosmesh.NodeFailure)
	p.Load = 300 * time.Second
	cfg, pl, err := New(testConfig(t)).runnerConfig(t.Context(), validationTarget{
		name: "staging", kubeconfig: kubeconfig, shopURL: "http://127.0.0.1:1", shopHost: "127.0.0.1", probe: readyProbe{},
	}, validationRun{profile: p, runID: "x", now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Nodes != nil || !strings.Contains(cfg.Unavailable[CapNodes], "not a lab cluster") {
		t.Errorf("node failure %v (unavailable: %q), want none, because it is not a lab cluster", cfg.Nodes, cfg.Unavailable[CapNodes])
	}
	if missing := cfg.unwired(pl); len(missing) != 0 {
		t.Errorf("unwired capabilities %v", missing)
	}
	for c, why := range cfg.Unavailable {
		if c != CapNodes {
			t.Errorf("%s unavailable (%s), want it wired", c, why)
		}
	}
	if cfg.Health == nil || cfg.HealthPoll == nil {
		t.Error("the health checks are not wired")
	}
}

// namingStopper records the cluster names it is asked to stop nodes of.
type namingStopper struct {
	controlplane.ClusterNodes
	clusters []string
}

func (s *namingStopper) StopNode(ctx context.Context, cluster, node string) error {
	s.clusters = append(s.clusters, cluster)
	return s.ClusterNodes.StopNode(ctx, cluster, node)
}

// readyProbe stands in for the stack's readiness, which needs processes.
type readyProbe struct{}

func (readyProbe) Check(context.Context, []byte) (Readiness, error) {
	return Readiness{Checks: []Check{{Name: "stack (stand-in)", OK: true}}}, nil
}

// shortPoll and shortPollReplicas poll the simulated cluster faster, to fit
// the shortened run.
func shortPoll(n NodeFailer) NodeFailer {
	f := n.(kube.NodeFailer)
	f.Poll = 200 * time.Millisecond
	return f
}

func shortPollReplicas(r ReplicaObserver) ReplicaObserver {
	o := r.(kube.ReplicaObserver)
	o.Poll = 200 * time.Millisecond
	return o
}

// createNamespace creates a namespace and deletes it when the test ends.
func createNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// chaosMeshStandIn creates a Deployment and a DaemonSet named like Chaos
// Mesh's controller and daemon, which the simulated nodes run Ready, so that
// the preflight's check of Chaos Mesh passes as on a cluster with Chaos Mesh.
func chaosMeshStandIn(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ns := charts.ChaosMeshNamespace
	labels := map[string]string{"app.kubernetes.io/name": "chaos-mesh-stand-in"}
	spec := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "127.0.0.1:5999/chaos-mesh:stand-in"}}},
	}
	one := int32(1)
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos-controller-manager"},
		Spec:       appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: spec},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(t.Context(), &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos-daemon"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: spec},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return kube.ChaosMeshReady(ctx, cs, charts.ChaosMeshNamespace) == nil, nil
	})
	if err != nil {
		t.Fatalf("the Chaos Mesh stand-in is not ready: %v", kube.ChaosMeshReady(t.Context(), cs, charts.ChaosMeshNamespace))
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
