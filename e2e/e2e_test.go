//go:build e2e

// Package e2e runs lab against a real k3d cluster: `make e2e`. It needs a
// Docker daemon and the internet (to pull the k3s and k3d images), so it is
// built only with the e2e tag and runs only when LAB_E2E=1; without Docker,
// or when the images cannot be pulled, it skips and says why.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/reports"
)

// checkQuickReport asserts what a quick validation on a healthy lab must
// show: every requirement of the quick profile measured and passed (those
// the profile does not validate marked so), and exit code 0, which says
// exactly that.
func checkQuickReport(tb testing.TB, path string, code int, stdout string) {
	tb.Helper()
	run, err := reports.Load(path)
	if err != nil {
		tb.Fatalf("read the validation's report: %v", err)
	}
	inProfile := 0
	for _, q := range run.Requirements {
		switch q.Status {
		case reports.Pass:
			inProfile++
		case reports.NotInProfile:
		default:
			inProfile++
			tb.Errorf("%s (%s) is %s: %s", q.ID, q.Title, q.Status, q.Reason)
		}
	}
	if inProfile == 0 {
		tb.Error("the quick profile validated no requirement")
	}
	if code != run.ExitCode() || code != 0 {
		tb.Errorf("lab validate --profile quick exited %d, the report's exit code is %d, want both 0:\n%s", code, run.ExitCode(), stdout)
	}
}

// TestE2EUpStatusDown brings the whole lab up (cluster, shop image, operators,
// Chaos Mesh, the stack), checks that it is ready, runs the quick validation,
// reuses the cluster, and removes it, leaving nothing in Docker.
//
// With LAB_E2E_OFFLINE=1 (`make e2e-offline`) it does the same offline, on
// lab's test-only node image and the offline stack (see offline_test.go),
// and its quick validation includes a node failure. With E2E_OUT set, the
// validation's report is written there.
func TestE2EUpStatusDown(tt *testing.T) {
	t := repeatFailures(tt)
	if os.Getenv("LAB_E2E") != "1" {
		ci.Missing(t, "LAB_E2E=1 is not set: the end-to-end test runs with `make e2e` (needs Docker and internet) or `make e2e-offline` (needs Docker)")
	}
	offline := os.Getenv("LAB_E2E_OFFLINE") == "1"
	if err := exec.CommandContext(t.Context(), "docker", "info").Run(); err != nil {
		ci.Missing(t, "no Docker daemon (%v); make e2e needs Docker", err)
	}
	dir := t.TempDir()
	bin := buildLab(t, dir)
	// The flags of labbin.Build, so the packages they share compile once.
	image := exec.CommandContext(t.Context(), "go", "run", "-trimpath", "./hack/image", "-out", dir, "-platforms", "linux/"+runtime.GOARCH, "-version", "e2e")
	image.Dir = ".."
	image.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := image.CombinedOutput(); err != nil {
		t.Fatalf("build the shop image: %v\n%s", err, out)
	}
	const name = "lab-e2e"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	env := []string{
		"LAB_CLUSTER_NAME=" + name, "LAB_CLUSTER_KUBECONFIG=" + kubeconfig, "LAB_CLUSTER_APIPORT=6560", "LAB_CLUSTER_INGRESSPORT=8090",
		"LAB_STACK_SHOPIMAGEARCHIVE=" + filepath.Join(dir, "shop-image-linux-"+runtime.GOARCH+".tar"),
	}
	var args []string
	var pause string
	if offline {
		var more []string
		args, more, pause = offlineLab(t, dir)
		env = append(env, more...)
	}
	lab := func(a ...string) (int, string, string) {
		t.Helper()
		return labCmd(t, bin, env, append(slices.Clone(args), a...)...)
	}
	docker := dockertest.Client(t)
	t.Cleanup(func() {
		lab("down")
		dockertest.AssertNothingLeft(t, docker, name)
	})

	if offline {
		// Ctrl-C while the stack is being installed: lab up removes what it
		// made (the phase before, the creation, is TestLifecycleInterrupted's).
		code, stderr := interrupted(t, bin, env, "Installing jewelry-shop", 10*time.Minute, append(slices.Clone(args), "up")...)
		if code == 0 || !strings.Contains(stderr, "Removing what this run created") {
			t.Errorf("lab up interrupted while installing the stack exited %d without removing what it created", code)
		}
		dockertest.AssertNothingLeft(t, docker, name)
	}

	begin := time.Now()
	code, _, stderr := lab("up")
	if code != 0 && strings.Contains(stderr, "could not be pulled") {
		ci.Missing(t, "the images cannot be pulled here (no internet?); make e2e-offline needs none:\n%s", stderr)
	}
	if code != 0 {
		t.Fatalf("lab up failed")
	}
	t.Logf("TIMING lab up to Ready: %v", time.Since(begin).Round(time.Second))

	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(kubeconfig); fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready != 3 {
		t.Errorf("%d Ready nodes, want 3", ready)
	}
	var chaos crclient.Client
	if offline {
		if chaos, err = controlplane.NewClient(rc); err != nil {
			t.Fatal(err)
		}
		runChaosStandIn(t, chaos, pause)
		checkMemory(t, docker, name, "with the stack")
	}

	if code, out, _ := lab("up"); code != 0 || !strings.Contains(out, "reused") {
		t.Errorf("second lab up did not reuse the cluster")
	}
	code, out, _ := lab("status")
	if code != 0 || strings.Count(out, " Ready") < 3 {
		t.Errorf("lab status does not show 3 Ready nodes")
	}
	for _, check := range []string{"✓ PostgreSQL", "✓ Redis Sentinel", "✓ web through the ingress", "✓ metrics API"} {
		if !strings.Contains(out, check) {
			t.Errorf("lab status does not show %q", check)
		}
	}
	if offline {
		for _, left := range []string{"postgres-operator", "chaos-mesh"} {
			if !strings.Contains(out, left) || !strings.Contains(out, "not installed offline") {
				t.Errorf("lab status does not say that %s is not installed offline", left)
			}
		}
	}
	if code, _, _ := lab("validate", "--profile", "quick", "--dry-run", "--out", filepath.Join(dir, "plan")); code != 0 {
		t.Errorf("lab validate --dry-run failed")
	}
	if offline {
		// Ctrl-C while the validation runs: it removes its experiments and
		// still writes its report.
		dir := filepath.Join(dir, "interrupted")
		code, _ := interrupted(t, bin, env, "Load: ", 5*time.Minute, append(slices.Clone(args), "validate", "--profile", "quick", "--out", dir)...)
		if code == 0 {
			t.Errorf("an interrupted lab validate exited 0")
		}
		if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
			t.Errorf("an interrupted lab validate wrote no report: %v", err)
		}
		checkNoExperiments(t, chaos)
	}
	reportDir := filepath.Join(dir, "report")
	if out := os.Getenv("E2E_OUT"); out != "" {
		reportDir = out
	}
	var peak func() uint64
	if offline {
		peak = sampleMemory(t, docker, name, 20*time.Second)
	}
	begin = time.Now()
	code, out, _ = lab("validate", "--profile", "quick", "--out", reportDir)
	t.Logf("TIMING lab validate --profile quick: %v; report in %s", time.Since(begin).Round(time.Second), reportDir)
	for _, f := range []string{"report.md", "report.json", "report.xml"} {
		if _, err := os.Stat(filepath.Join(reportDir, f)); err != nil {
			t.Errorf("the validation wrote no %s: %v", f, err)
		}
	}
	if offline {
		mem := peak()
		t.Logf("MEMORY of the cluster's containers, the most sampled during the validation: %.2f GiB", float64(mem)/(1<<30))
		if mem > 8<<30 {
			t.Errorf("the cluster's containers used %.2f GiB during the validation, more than 8 GiB", float64(mem)/(1<<30))
		}
		checkOfflineReport(t, filepath.Join(reportDir, "report.json"), code)
	} else {
		checkQuickReport(t, filepath.Join(reportDir, "report.json"), code, out)
	}
	begin = time.Now()
	if code, out, _ := lab("down"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("lab down failed")
	}
	t.Logf("TIMING lab down: %v", time.Since(begin).Round(time.Second))
	dockertest.AssertNothingLeft(t, docker, name)
	if code, out, _ := lab("down"); code != 0 || !strings.Contains(out, "Nothing to remove") {
		t.Errorf("second lab down is not a no-op")
	}
}
