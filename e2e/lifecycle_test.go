package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/internal/labbin"
)

// lifecycle is one cluster's settings for the lab binary: a name, ports and
// a kubeconfig of its own, and the test-only node images.
type lifecycle struct {
	t          *testing.T
	bin, name  string
	kubeconfig string
	env        []string
}

func newLifecycle(t *testing.T, bin string) *lifecycle {
	t.Helper()
	imgs := dockertest.NodeImages(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	lc := &lifecycle{t: t, bin: bin, name: "labtest-" + hex.EncodeToString(b)}
	lc.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	lc.env = append(imgs.LabEnv(),
		"LAB_CLUSTER_NAME="+lc.name, "LAB_CLUSTER_KUBECONFIG="+lc.kubeconfig,
		"LAB_CLUSTER_APIPORT="+dockertest.FreePort(t), "LAB_CLUSTER_INGRESSPORT="+dockertest.FreePort(t),
		"LAB_STACK_INSTALL=false",
	)
	t.Cleanup(func() { labCmd(t, bin, lc.env, "down") })
	return lc
}

func (lc *lifecycle) lab(args ...string) (int, string, string) {
	lc.t.Helper()
	return labCmd(lc.t, lc.bin, lc.env, args...)
}

// TestLifecycle runs k3d's lifecycle through the real lab binary on the
// local Docker daemon with the test-only node images (internal/testnode):
// lab up creates a three-node cluster whose nodes become Ready, lab status
// shows it as lab's, a second lab up reuses it, a node stopped and started
// as node failure does goes NotReady and Ready again, lab down, interrupted
// with Ctrl-C halfway, still removes every container, network, volume and
// the kubeconfig, and a second lab down has nothing to do.
func TestLifecycle(t *testing.T) {
	dc := dockertest.Client(t)
	bin := buildLab(t, t.TempDir())
	lc := newLifecycle(t, bin)

	if code, out, stderr := lc.lab("up"); code != 0 || !strings.Contains(out, "Cluster "+lc.name+" is ready (created") {
		t.Fatalf("lab up: exit %d\n%s%s", code, out, stderr)
	}
	if fi, err := os.Stat(lc.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %s: %v, mode %v; want a file of mode 0600", lc.kubeconfig, err, fi)
	}
	kube := clientOf(t, lc.kubeconfig)
	if n := readyNodes(t, kube); n != 3 {
		t.Errorf("%d Ready nodes after lab up, want 3", n)
	}

	code, out, _ := lc.lab("status")
	if code != 0 || !strings.Contains(out, "(created by lab)") || strings.Count(out, " Ready") != 3 || !strings.Contains(out, "k3d-"+lc.name+"-serverlb") {
		t.Errorf("lab status: exit %d, want the cluster as lab's with its 3 Ready nodes and its load balancer:\n%s", code, out)
	}
	if code, out, stderr := lc.lab("up"); code != 0 || !strings.Contains(out, "already existed and is healthy; reused") {
		t.Errorf("second lab up: exit %d, want the cluster reused:\n%s%s", code, out, stderr)
	}

	// Node failure stops and starts a node through the cluster adapter.
	agent := "k3d-" + lc.name + "-agent-1"
	m := cluster.New(nil)
	ctx := t.Context()
	if err := m.StopNode(ctx, lc.name, agent); err != nil {
		t.Fatalf("stop %s: %v", agent, err)
	}
	waitNodeReady(t, kube, agent, false, 2*time.Minute) // lab's grace period is 40 s
	code, out, stderr := lc.lab("status")
	if code != 0 || !strings.Contains(out, "docker start "+agent) {
		t.Errorf("lab status with %s stopped: exit %d, want it to say how to start it:\n%s%s", agent, code, out, stderr)
	}
	if code, _, stderr := lc.lab("up"); code != 1 || !strings.Contains(stderr, agent) {
		t.Errorf("lab up with %s stopped: exit %d, want 1 naming the stopped node:\n%s", agent, code, stderr)
	}
	if err := m.StartNode(ctx, lc.name, agent); err != nil {
		t.Fatalf("start %s: %v", agent, err)
	}
	waitNodeReady(t, kube, agent, true, time.Minute)

	// Ctrl-C once lab down has removed a node container: the removal is
	// finished, not left halfway (the plain lab down is make e2e's).
	byCluster := filters.NewArgs(filters.Arg("label", "k3d.cluster="+lc.name))
	before, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: byCluster})
	if err != nil {
		t.Fatal(err)
	}
	code, stderr = labbin.Interrupt(t, 2*time.Minute, bin, lc.env, func(ctx context.Context, _ string) (bool, error) {
		cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: byCluster})
		return len(cs) < len(before), err
	}, "down")
	if code != 0 || !strings.Contains(stderr, "finishing the removal") {
		t.Errorf("lab down interrupted while removing the cluster: exit %d, want 0 after finishing the removal:\n%s", code, stderr)
	}
	dockertest.AssertNothingLeft(t, dc, lc.name)
	if _, err := os.Stat(lc.kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig left behind: %v", err)
	}
	if code, out, _ := lc.lab("down"); code != 0 || !strings.Contains(out, "Nothing to remove") {
		t.Errorf("second lab down: exit %d, want nothing to remove:\n%s", code, out)
	}
}

// TestLifecycleInterrupted presses Ctrl-C while lab up creates the cluster,
// once its first node container exists: lab stops, removes what it made
// and exits; no container, network, volume or kubeconfig is left.
func TestLifecycleInterrupted(t *testing.T) {
	dc := dockertest.Client(t)
	bin := buildLab(t, t.TempDir())
	lc := newLifecycle(t, bin)

	byCluster := filters.NewArgs(filters.Arg("label", "k3d.cluster="+lc.name))
	code, stderr := labbin.Interrupt(t, 2*time.Minute, bin, lc.env, func(ctx context.Context, _ string) (bool, error) {
		cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: byCluster})
		return len(cs) > 0, err
	}, "up")
	if code == 0 {
		t.Errorf("interrupted lab up exited 0")
	}
	for _, want := range []string{"Interrupted", "Removing what this run created"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
	dockertest.AssertNothingLeft(t, dc, lc.name)
	if _, err := os.Stat(lc.kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig left behind: %v", err)
	}
}

func clientOf(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc)
}

func readyNodes(t *testing.T, kube kubernetes.Interface) int {
	t.Helper()
	nodes, err := kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, node := range nodes.Items {
		if nodeReady(node) {
			n++
		}
	}
	return n
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitNodeReady(t *testing.T, kube kubernetes.Interface, name string, ready bool, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil // the API may be briefly away
		}
		return nodeReady(*n) == ready, nil
	})
	if err != nil {
		t.Fatalf("node %s Ready=%v not seen within %s: %v", name, ready, timeout, err)
	}
	t.Logf("node %s Ready=%v after %s", name, ready, time.Since(start).Round(100*time.Millisecond))
}
