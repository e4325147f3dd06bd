//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"k8s.io/apimachinery/pkg/api/meta"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/internal/labbin"
	"github.com/jewelry-shop/lab/internal/testnode"
	"github.com/jewelry-shop/lab/reports"
)

// The offline lab (`make e2e-offline`): the same up, status, validate and
// down as `make e2e`, on a machine that can pull no image. Its cluster is
// made of lab's test-only k3s-compatible node image (internal/testnode),
// its stack is the offline one (stack.offline: the jewelry-shop chart with
// one PostgreSQL server), its images the Debian-built stand-ins for Redis,
// nginx and PostgreSQL, and Chaos Mesh's controller is played by this test
// process through the API. Every stand-in is named in the report.

// offlineConfig is the offline lab's lab.yaml: the quick profile with a
// node failure (the real `docker stop` of an agent, which quick leaves to
// full), the load long enough for it, and 2 minutes to watch the
// scale-down (the HPA was back at its minimum 52-61 s after the load on
// these nodes), to keep the test within its time.
const offlineConfig = `stack:
  offline: true
  values: %s
profiles:
  quick:
    description: the quick profile's 100 users, with a node failure after its experiments, on the offline lab
    experiments: [web-pod-kill, postgres-primary-isolation, redis-master-failure, node-failure]
    load: 7m30s
    scaleDownWatch: 2m
    budget: 13m
`

// offlineMeasured are the requirements the offline lab must measure (pass
// or fail, never "not measured"): those the stand-ins do not take away.
// R26 and R29 need the postgres-operator's primary, which the offline
// stack does not have.
var offlineMeasured = []string{"R25", "R27", "R28", "R30", "R31", "R33", "R35"}

// offlineLab builds and loads the images of the offline lab, writes its
// configuration and returns the lab binary's arguments and environment for
// it, and the pause image the Chaos Mesh stand-in swaps in.
func offlineLab(tb testing.TB, dir string) (args, env []string, pause string) {
	tb.Helper()
	nodes := dockertest.NodeImages(tb)
	work, err := testnode.BuildWorkloadImages(tb.Context(), testnode.Options{})
	if err != nil {
		tb.Fatalf("build the workload images: %v", err)
	}
	loaded, err := testnode.LoadImages(tb.Context(), dockertest.Client(tb), work.Redis, work.Nginx, work.Postgres)
	if err != nil {
		tb.Fatalf("load the workload images into Docker: %v", err)
	}
	tb.Logf("workload images loaded: %v", loaded)
	img := func(ref string) map[string]any {
		repo, tag, _ := strings.Cut(ref, ":")
		return map[string]any{"repository": repo, "tag": tag, "pullPolicy": "Never"}
	}
	values := fmt.Sprintf(`image: {pullPolicy: Never}
redis: {image: %s}
nginx: {image: %s}
postgresql: {single: {image: %s}}
`, flow(img(work.Redis.Ref)), flow(img(work.Nginx.Ref)), flow(img(work.Postgres.Ref)))
	valuesFile := filepath.Join(dir, "offline-values.yaml")
	config := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(fmt.Sprintf(offlineConfig, valuesFile)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return []string{"--config", config}, nodes.LabEnv(), work.Pause.Ref
}

// flow writes an image's values as a YAML flow map.
func flow(m map[string]any) string {
	return fmt.Sprintf("{repository: %q, tag: %q, pullPolicy: %q}", m["repository"], m["tag"], m["pullPolicy"])
}

// runChaosStandIn installs the Chaos Mesh stand-in into the lab's cluster
// and plays Chaos Mesh's controller until the test ends.
func runChaosStandIn(tb testing.TB, c crclient.Client, pause string) {
	tb.Helper()
	if err := controlplane.InstallChaosStandIn(tb.Context(), c, charts.ChaosMeshNamespace, pause); err != nil {
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(tb.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		controlplane.RunChaosStandInWith(ctx, c, "jewelry-shop", controlplane.StandIn{PauseImage: pause, OnKill: func(k controlplane.Kill) {
			tb.Logf("chaos stand-in: %s: %s pod %s at %s", k.Chaos, k.Action, k.Pod, k.At.Format(time.TimeOnly))
		}})
	}()
	tb.Cleanup(func() { stop(); <-done })
}

// checkOfflineReport asserts what the offline lab's validation must show:
// the requirements of offlineMeasured measured, the others not failed
// silently (each says why), and every stand-in named in the environment.
func checkOfflineReport(tb testing.TB, path string, code int) {
	tb.Helper()
	run, err := reports.Load(path)
	if err != nil {
		tb.Fatalf("read the validation's report: %v", err)
	}
	rows := map[string]reports.Requirement{}
	for _, q := range run.Requirements {
		rows[q.ID] = q
		tb.Logf("%s %s: %s %s %s", q.ID, q.Title, q.Status, q.Measured, q.Reason)
	}
	for _, id := range offlineMeasured {
		q, ok := rows[id]
		switch {
		case !ok:
			tb.Errorf("%s is not in the report", id)
		case q.Status != reports.Pass && q.Status != reports.Fail:
			tb.Errorf("%s (%s) is %s, want measured (pass or fail): %s", id, q.Title, q.Status, q.Reason)
		}
	}
	for _, q := range run.Requirements {
		if q.Status != reports.Pass && q.Status != reports.Fail && q.Status != reports.NotInProfile && q.Reason == "" {
			tb.Errorf("%s is %s without a reason", q.ID, q.Status)
		}
	}
	if code != run.ExitCode() {
		tb.Errorf("lab validate exited %d, the report's exit code is %d", code, run.ExitCode())
	}
	for key, want := range map[string]string{
		"k3s":                   "k3s-compatible test node from Kubernetes v1.37.2 parts",
		"postgresql":            "without the operator",
		"chaos mesh controller": "stand-in",
		"stack images":          "lab-test.invalid/postgres-debian",
	} {
		if got := run.Environment[key]; !strings.Contains(got, want) {
			tb.Errorf("environment %q = %q, want it to say %q", key, got, want)
		}
	}
}

// checkMemory fails the test if the cluster's containers use more than
// the 8 GiB the offline lab may (its pods' cgroups are below their node
// container's, so Docker's figure includes them).
func checkMemory(tb testing.TB, c *client.Client, name, when string) {
	tb.Helper()
	mem := clusterMemory(tb, c, name)
	tb.Logf("MEMORY of the cluster's containers %s: %.2f GiB", when, float64(mem)/(1<<30))
	if mem > 8<<30 {
		tb.Errorf("the cluster's containers use %.2f GiB %s, more than 8 GiB", float64(mem)/(1<<30), when)
	}
}

// sampleMemory samples the cluster's memory every interval until the
// returned function is called, which returns the most it saw.
func sampleMemory(tb testing.TB, c *client.Client, name string, interval time.Duration) func() uint64 {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	var most uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if m, err := memoryOf(ctx, c, name); err == nil {
				most = max(most, m)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		cancel()
		<-done
		return most
	}
}

// clusterMemory is the memory the cluster's containers use now, as Docker
// reports it, in bytes.
func clusterMemory(tb testing.TB, c *client.Client, name string) uint64 {
	tb.Helper()
	m, err := memoryOf(tb.Context(), c, name)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// memoryOf sums the memory use of the cluster's running containers, as
// `docker stats` reports it.
func memoryOf(ctx context.Context, c *client.Client, name string) (uint64, error) {
	cs, err := c.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "k3d.cluster="+name))})
	if err != nil {
		return 0, fmt.Errorf("list the cluster's containers: %w", err)
	}
	var total uint64
	for _, ct := range cs {
		out, err := exec.CommandContext(ctx, "docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", ct.ID).Output()
		if err != nil {
			return 0, fmt.Errorf("docker stats %s: %w", ct.Names, err)
		}
		used, _, _ := strings.Cut(strings.TrimSpace(string(out)), " / ")
		b, err := parseSize(used)
		if err != nil {
			return 0, fmt.Errorf("docker stats %s: %w", ct.Names, err)
		}
		total += b
	}
	return total, nil
}

// parseSize reads Docker's sizes as `docker stats` prints them (1.5GiB,
// 300MiB, 12kB).
func parseSize(s string) (uint64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return uint64(f * u.mult), nil
		}
	}
	return 0, fmt.Errorf("size %q: no unit", s)
}

// interrupted runs the lab binary with args and presses Ctrl-C once its
// standard error says when (labbin.Interrupt).
func interrupted(tb testing.TB, bin string, env []string, when string, timeout time.Duration, args ...string) (int, string) {
	tb.Helper()
	return labbin.Interrupt(tb, timeout, bin, env, func(_ context.Context, stderr string) (bool, error) {
		return strings.Contains(stderr, when), nil
	}, args...)
}

// checkNoExperiments fails the test if any Chaos Mesh object is left in the
// stack's namespace.
func checkNoExperiments(tb testing.TB, c crclient.Client) {
	tb.Helper()
	for _, list := range []crclient.ObjectList{&chaosv1alpha1.PodChaosList{}, &chaosv1alpha1.NetworkChaosList{}, &chaosv1alpha1.StressChaosList{}} {
		if err := c.List(tb.Context(), list, crclient.InNamespace("jewelry-shop")); err != nil {
			tb.Fatal(err)
		}
		if n := meta.LenList(list); n > 0 {
			tb.Errorf("%d %T left in jewelry-shop", n, list)
		}
	}
}
