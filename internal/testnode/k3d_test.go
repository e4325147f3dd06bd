//go:build !race

// The race detector flags k3d itself: its Docker client (GetDockerClient)
// writes docker/cli's package globals from concurrent goroutines during every
// cluster creation. `make test` runs this file's tests without -race.

package testnode_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/lab"
)

// TestK3dClusterWithStandinImages creates a real 1-server-2-agent cluster
// through cluster.Manager (the k3d library, as `lab up` does) from the
// test-only images, and drives it through what lab does to a cluster: the
// kubeconfig, the wait for three Ready nodes, an agent stopped (its Node goes
// NotReady within lab's node-monitor-grace-period) and started again
// (Ready), and the deletion, after which Docker holds nothing of the cluster.
func TestK3dClusterWithStandinImages(t *testing.T) {
	imgs := dockertest.NodeImages(t)
	docker := dockertest.Client(t)
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	// As lab's commands do; it also sets K3D_IMAGE_TOOLS, where k3d takes
	// its tools image from.
	cluster.SetupLibraries(log, lab.DefaultHelperImageTag, imgs.Tools.Ref)
	m := cluster.New(log)

	name := "lab-standin-" + suffix(t)
	spec := cluster.Spec{
		Name:              name,
		Servers:           1,
		Agents:            2,
		Image:             imgs.Node.Ref,
		LoadBalancerImage: imgs.LoadBalancer.Ref,
		ToolsImage:        imgs.Tools.Ref,
		APIHost:           "127.0.0.1",
		APIPort:           freePort(t),
		IngressHost:       "127.0.0.1",
		IngressPort:       freePort(t),
		ServerArgs:        lab.DefaultConfig().Cluster.ServerArgs,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	deleted := false
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, docker, name)
		}
		if deleted {
			return
		}
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer ccancel()
		if _, err := m.Delete(cctx, name, true); err != nil {
			t.Errorf("delete cluster %s: %v", name, err)
		}
	})

	begin := time.Now()
	if err := m.Create(ctx, spec, cluster.CreateOptions{Timeout: 5 * time.Minute}); err != nil {
		t.Fatalf("create cluster: %v", err)
	}
	created := time.Since(begin)
	kubeconfig, err := m.Kubeconfig(ctx, name)
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	if want := fmt.Sprintf("https://127.0.0.1:%d", spec.APIPort); !bytes.Contains(kubeconfig, []byte(want)) {
		t.Errorf("the kubeconfig does not point at %s:\n%s", want, kubeconfig)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	err = m.WaitReady(wctx, kubeconfig, 3, nil)
	wcancel()
	if err != nil {
		t.Fatalf("wait for 3 Ready nodes: %v", err)
	}
	t.Logf("cluster created in %v (k3d saw every node's ready line), 3 nodes Ready after %v", created.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	if ins, err := docker.ContainerInspect(ctx, "k3d-"+name+"-server-0"); err == nil {
		t.Logf("k3d started the server as %v %v", ins.Config.Entrypoint, ins.Config.Cmd)
	}
	// k3d waited for "Cluster dns configmap" and filled NodeHosts into the
	// server's coredns.yaml with the cluster's containers.
	if f := containerFile(ctx, t, docker, "k3d-"+name+"-server-0", "/var/lib/rancher/k3s/server/manifests/coredns.yaml"); !strings.Contains(f, "host.k3d.internal") || !strings.Contains(f, "k3d-"+name+"-agent-0") {
		t.Errorf("k3d did not write NodeHosts into coredns.yaml:\n%s", f)
	}
	info, err := m.Get(ctx, name)
	if err != nil {
		t.Fatalf("get cluster: %v", err)
	}
	if !info.Managed || len(info.NodesByRole("server")) != 1 || len(info.NodesByRole("agent")) != 2 || len(info.NodesByRole("loadbalancer")) != 1 {
		t.Errorf("cluster info = %+v, want a lab-managed cluster of 1 server, 2 agents and a load balancer", info)
	}
	statuses, err := m.Statuses(ctx, kubeconfig)
	if err != nil {
		t.Fatalf("node statuses: %v", err)
	}
	var names []string
	for _, s := range statuses {
		names = append(names, s.Name)
	}
	if want := []string{"k3d-" + name + "-agent-0", "k3d-" + name + "-agent-1", "k3d-" + name + "-server-0"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("nodes = %v, want %v", names, want)
	}

	// An agent fails: its Node must go NotReady within lab's grace period
	// (node-monitor-grace-period, 40s) plus the monitor period and slack.
	agent := "k3d-" + name + "-agent-1"
	stopped := time.Now()
	if err := m.StopNode(ctx, name, agent); err != nil {
		t.Fatalf("stop %s: %v", agent, err)
	}
	if err := waitNode(ctx, m, kubeconfig, agent, false, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s NotReady %v after its container was stopped", agent, time.Since(stopped).Round(time.Second))
	started := time.Now()
	if err := m.StartNode(ctx, name, agent); err != nil {
		t.Fatalf("start %s: %v", agent, err)
	}
	if err := waitNode(ctx, m, kubeconfig, agent, true, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s Ready %v after its container was started", agent, time.Since(started).Round(time.Second))

	// The server restarts with its state: `docker stop` runs k3d's
	// entrypoint cleanup (kubectl drain), `docker start` brings the same
	// cluster back (etcd data, CA and nodes kept; the old kubeconfig still
	// works) and k3d's entrypoint uncordons the server again.
	server := "k3d-" + name + "-server-0"
	cs := clientset(t, kubeconfig)
	before := nodeUIDs(ctx, t, cs)
	restarted := time.Now()
	stopTimeout := 30
	if err := docker.ContainerStop(ctx, server, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatalf("docker stop %s: %v", server, err)
	}
	t.Logf("%s stopped in %v", server, time.Since(restarted).Round(time.Millisecond))
	if err := docker.ContainerStart(ctx, server, container.StartOptions{}); err != nil {
		t.Fatalf("docker start %s: %v", server, err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 3*time.Minute)
	err = m.WaitReady(wctx, kubeconfig, 3, nil)
	wcancel()
	if err != nil {
		t.Fatalf("wait for 3 Ready nodes after restarting the server: %v", err)
	}
	if after := nodeUIDs(ctx, t, cs); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the nodes changed across a server restart (etcd data lost?):\nbefore %v\nafter  %v", before, after)
	}
	if err := waitSchedulable(ctx, cs, server, time.Minute); err != nil {
		t.Error(err)
	}
	if log := containerLog(ctx, t, docker, server); !strings.Contains(log, "Draining node") || !strings.Contains(log, "node/"+server+" uncordoned") {
		t.Errorf("the server's log shows no drain at the stop and uncordon at the start (k3d's entrypoint):\n%s", log)
	}
	t.Logf("%s restarted: 3 nodes Ready and the server uncordoned %v after the stop", server, time.Since(restarted).Round(time.Second))

	existed, err := m.Delete(ctx, name, false)
	if err != nil || !existed {
		t.Fatalf("delete cluster: existed=%v, %v", existed, err)
	}
	deleted = true
	if left := leftovers(ctx, t, docker, name); len(left) > 0 {
		t.Errorf("after the deletion Docker still has: %v", left)
	}
}

// waitNode polls the node's readiness every second until it is ready (or
// not), for at most timeout.
func waitNode(ctx context.Context, m *cluster.Manager, kubeconfig []byte, node string, ready bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not seen"
	for {
		statuses, err := m.Statuses(ctx, kubeconfig)
		if err == nil {
			for _, s := range statuses {
				if s.Name == node {
					if s.Ready == ready {
						return nil
					}
					last = fmt.Sprintf("Ready=%v (%s)", s.Ready, s.Reason)
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready=%v within %v; last seen: %s", node, ready, timeout, last)
		case <-time.After(time.Second):
		}
	}
}

func clientset(t *testing.T, kubeconfig []byte) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("read the kubeconfig: %v", err)
	}
	rc.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatalf("make a client: %v", err)
	}
	return cs
}

// nodeUIDs maps each node's name to its UID.
func nodeUIDs(ctx context.Context, t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = string(n.UID)
	}
	return out
}

// waitSchedulable waits until the node is not cordoned.
func waitSchedulable(ctx context.Context, cs kubernetes.Interface, node string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil && !n.Spec.Unschedulable {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s still cordoned %v after the restart (k3d's entrypoint uncordons it): %w", node, timeout, err)
		case <-time.After(time.Second):
		}
	}
}

// leftovers lists, straight from the Docker API, every container, network
// and volume that belongs to the cluster: by k3d's cluster label and by name.
func leftovers(ctx context.Context, t *testing.T, c *client.Client, name string) []string {
	t.Helper()
	var out []string
	byLabel := filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))
	byName := filters.NewArgs(filters.Arg("name", "k3d-"+name))
	for _, f := range []filters.Args{byLabel, byName} {
		cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatalf("list containers: %v", err)
		}
		for _, ct := range cs {
			out = append(out, "container "+strings.Join(ct.Names, ","))
		}
		vs, err := c.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			t.Fatalf("list volumes: %v", err)
		}
		for _, v := range vs.Volumes {
			out = append(out, "volume "+v.Name)
		}
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: byName})
	if err != nil {
		t.Fatalf("list networks: %v", err)
	}
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	return out
}

// containerFile returns a file of a container, through the Docker API.
func containerFile(ctx context.Context, t *testing.T, c *client.Client, name, path string) string {
	t.Helper()
	rc, _, err := c.CopyFromContainer(ctx, name, path)
	if err != nil {
		t.Fatalf("copy %s from %s: %v", path, name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatalf("copy %s from %s: %v", path, name, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatalf("copy %s from %s: %v", path, name, err)
	}
	return string(b)
}

// containerLog returns the container's whole log.
func containerLog(ctx context.Context, t *testing.T, c *client.Client, name string) string {
	t.Helper()
	rc, err := c.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return buf.String()
}

// dumpLogs writes the end of every node container's log to the test log.
func dumpLogs(t *testing.T, c *client.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))})
	if err != nil {
		t.Logf("list the cluster's containers: %v", err)
		return
	}
	for _, ct := range cs {
		rc, err := c.ContainerLogs(ctx, ct.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "60"})
		if err != nil {
			t.Logf("logs of %v: %v", ct.Names, err)
			continue
		}
		var buf bytes.Buffer
		_, _ = stdcopy.StdCopy(&buf, &buf, rc)
		_ = rc.Close()
		t.Logf("end of the log of %v (%s):\n%s", ct.Names, ct.State, buf.String())
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// suffix returns 6 random lower-case letters and digits, so that clusters of
// concurrent test runs do not collide.
func suffix(t *testing.T) string {
	t.Helper()
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// testWriter sends log lines to the test's log until the test ends; k3d
// and client-go log through process-wide loggers, possibly later.
type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func newTestWriter(t *testing.T) *testWriter {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w *testWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}
