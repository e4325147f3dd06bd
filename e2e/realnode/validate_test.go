//go:build !race

// Package realnode_test runs the real `lab validate` on the jewelry-shop
// stack in real containers (tier 3b of DESIGN.md): three real nodes of
// internal/realnode beside the test control plane, the chart installed with
// the Helm SDK as `lab up` does, and the lab binary through its
// --kubeconfig/--target route, the production wiring. It is built without
// the race detector: the measurements are the run's, and a race-instrumented
// test binary (it relays every user request to the nodes) would skew them.
//
// `make test` runs it with the realnode profile below (the quick profile's
// users and experiments in less time, to keep CI within its budget);
// `make validate-local` with -profile quick, keeping the report in OUT.
package realnode_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/labbin"
	"github.com/jewelry-shop/lab/internal/realnode"
	"github.com/jewelry-shop/lab/reports"
)

var (
	out     = flag.String("out", "", "keep the report of lab validate in this directory (make validate-local's OUT)")
	profile = flag.String("profile", "realnode", "the profile lab validate runs: realnode (make test) or quick (make validate-local)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	controlplane.Main(m)
}

const stackNS = "jewelry-shop"

// labConfig defines the realnode profile: the quick profile's 100 users and
// its three experiments (web pod kill, PostgreSQL primary failure, Redis
// master failure), 35 s apart in 3 minutes of load (the PostgreSQL failure's
// 60 s hold and its settling time must fit, even where it is not run), and
// a scale-down watch of two minutes: the HPA's 30 s stabilisation, its 15 s
// steps and the metrics' lag took 61-64 s on the quick profile's runs, so a
// minute's watch ended just before the HPA was back. The thresholds are the
// defaults.
const labConfig = `profiles:
  realnode:
    description: the quick profile's users and experiments in less time, for make test on the real-node tier
    budget: 8m
    users: 100
    spawnRate: 10
    load: 3m
    baseline: 20s
    experiments: [web-pod-kill, postgres-primary-failure, redis-master-failure]
    spacing: 35s
    scaleDownWatch: 2m
`

// TestValidateOnRealNodes brings the tier up (three real nodes, the
// PostgreSQL and Chaos Mesh stand-ins, the chart), runs the lab binary's
// `lab validate` against it through --kubeconfig and --target, and checks
// that the report measured what the tier can measure, from real requests
// and real containers, and says why the rest was not run.
func TestValidateOnRealNodes(t *testing.T) {
	bin := labbin.Build(t, t.TempDir())
	archive, tag := shopImage(t)
	env := controlplane.Start(t, controlplane.Options{RealNodes: true})
	begin := time.Now()
	c := realnode.Start(t, env, realnode.Options{Images: []string{archive}})
	cs := kubernetes.NewForConfigOrDie(env.Config)
	kubeconfig := readFile(t, env.Kubeconfig)

	createNamespace(t, cs, stackNS)
	postgresStandIn(t, c, cs, stackNS)
	chaosMeshStandIn(t, env, c, stackNS)
	installChart(t, c, kubeconfig, tag)
	target := c.Expose(t, stackNS, "jewelry-shop-nginx", 80)
	waitFor(t, "the shop through the ingress", time.Minute, func(ctx context.Context) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target+"/api/products?page=1", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return resp.StatusCode == http.StatusOK, resp.Status + " " + string(b)
	})
	t.Logf("the tier is up in %v; the shop answers at %s", time.Since(begin).Round(time.Millisecond), target)

	dir := *out
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "report")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(config, []byte(labConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var sawMetrics atomic.Bool
	wctx, stopWatch := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchAutoscaling(wctx, t, cs, 20*time.Second, &sawMetrics)
	}()
	begin = time.Now()
	code, _, _ := labbin.Run(t, 25*time.Minute, bin, []string{"LAB_STACK_SHOPIMAGEARCHIVE=" + archive},
		"--config", config, "validate", "--profile", *profile, "--kubeconfig", env.Kubeconfig, "--target", target,
		"--allow-chaos-on-foreign-cluster", "--out", dir)
	stopWatch()
	<-watched
	t.Logf("lab validate --profile %s exited %d after %v; report in %s", *profile, code, time.Since(begin).Round(time.Second), dir)
	logProber(t, cs)
	logPods(t, cs)

	run, err := reports.Load(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("read the report: %v", err)
	}
	if code != run.ExitCode() {
		t.Errorf("lab validate exited %d, its report's exit code is %d", code, run.ExitCode())
	}
	checkReport(t, run)
	if !sawMetrics.Load() {
		t.Error("the HPA never had a CPU utilization from the metrics API during the run")
	}
	assertNoChaosLeft(t, env.Client)
}

// checkReport asserts what the report of a run on this tier must show.
func checkReport(t *testing.T, run *reports.Run) {
	t.Helper()
	rows := map[string]reports.Requirement{}
	for _, q := range run.Requirements {
		rows[q.ID] = q
		t.Logf("%s %s: %s — %s %s", q.ID, q.Title, q.Status, q.Measured, q.Reason)
	}
	if !run.Progress.Completed {
		t.Errorf("the run did not complete: %+v", run.Progress)
	}
	// Measured for real, and passed on a healthy stack: the load through
	// the ingress, nginx and web (R25, R31), the replacement of a killed
	// web pod (R27), a Redis failover through the Sentinels in the pods
	// (R30), the probes of the live workloads and the health endpoint
	// (R33).
	for _, id := range []string{"R25", "R27", "R30", "R31", "R33"} {
		if rows[id].Status != reports.Pass {
			t.Errorf("%s is %s (%s), want a pass measured on the real nodes", id, rows[id].Status, rows[id].Reason)
		}
	}
	// Measured, whatever the verdict: the HPA on real metrics (R35) and
	// the prober's acknowledged writes read back (no data loss).
	for _, id := range []string{"R35", "no-data-loss"} {
		if s := rows[id].Status; s != reports.Pass && s != reports.Fail {
			t.Errorf("%s is %s (%s), want it measured", id, s, rows[id].Reason)
		}
	}
	// The PostgreSQL here is a stand-in: its failover is not run, saying so.
	if q := rows["R29"]; q.Status != reports.NotRun || !strings.Contains(q.Reason, "postgresql resource jewelry-shop-db is absent") {
		t.Errorf("R29 = %s (%s), want not run because the operator's postgresql resource is absent", q.Status, q.Reason)
	}
	for _, id := range []string{"R28", "R32", "R34"} {
		if rows[id].Status != reports.NotInProfile {
			t.Errorf("%s is %s, want not in the profile", id, rows[id].Status)
		}
	}
	if q := rows["R27"]; !strings.Contains(q.Measured, "replacement pod passed its readiness probe") && !strings.Contains(q.Measured, "web replicas all Ready") {
		t.Errorf("R27 measured %q, want the time until the replacement was Ready", q.Measured)
	}
	for _, e := range run.Experiments {
		if e.Name == "redis-master-failure" && (e.Leader == nil || e.Leader.Old == "" || e.Leader.New == "") {
			t.Errorf("the Redis master failure names no master before and after: %+v", e.Leader)
		}
	}
	if run.Load == nil || run.Load.Overall.Requests < 1000 {
		t.Errorf("the load sent %+v, want thousands of requests", run.Load)
	}
	for key, want := range map[string]string{
		"postgresql":            "not the operator's",
		"nodes":                 "3 (3 Ready): 3 × kubelet v1.37.2, containerd://1.6.20",
		"chaos mesh controller": "lab-test.invalid/pause:",
	} {
		if got := run.Environment[key]; !strings.Contains(got, want) {
			t.Errorf("the environment's %s is %q, want %q in it", key, got, want)
		}
	}
	if _, ok := run.Environment["k3s image"]; ok {
		t.Errorf("the environment names the k3s image lab would install on a cluster it did not make: %v", run.Environment)
	}
}

// assertNoChaosLeft checks that lab removed every chaos object it made.
func assertNoChaosLeft(t *testing.T, c client.Client) {
	t.Helper()
	for _, list := range []client.ObjectList{&chaosv1alpha1.PodChaosList{}, &chaosv1alpha1.NetworkChaosList{}, &chaosv1alpha1.StressChaosList{}} {
		if err := c.List(t.Context(), list, client.InNamespace(stackNS)); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(list); n != 0 {
			t.Errorf("%d chaos objects (%T) left in %s", n, list, stackNS)
		}
	}
}
