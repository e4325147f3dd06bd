//go:build !race

package testnode_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/dockertest"
	"github.com/jewelry-shop/lab/lab"
)

// TestK3dPodsRunInRealContainers creates a 1-server-1-agent cluster from
// the test-only node image through cluster.Manager (the k3d library, as
// `lab up` does), imports a workload image from the local Docker into the
// nodes as `lab up` imports the shop's (k3d's image import: `ctr image
// import` in each node), and runs a pod on each node. Each must really run:
// a container ID from containerd, an exec readiness probe passed, its output
// read through the API (`kubectl logs`: API server → kubelet over TLS), its
// IP from the node's pod range. The nodes report a containerd runtime and a
// kubelet. After the deletion Docker holds nothing of the cluster, the nodes'
// anonymous volumes (containerd's images, the kubelet's pods) included.
func TestK3dPodsRunInRealContainers(t *testing.T) {
	imgs := dockertest.NodeImages(t)
	docker := dockertest.Client(t)
	workload := dockertest.Busybox(t, docker)
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cluster.SetupLibraries(log, lab.DefaultHelperImageTag, imgs.Tools.Ref)
	m := cluster.New(log)

	name := "lab-pods-" + suffix(t)
	spec := cluster.Spec{
		Name:              name,
		Servers:           1,
		Agents:            1,
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
	kubeconfig, err := m.Kubeconfig(ctx, name)
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	err = m.WaitReady(wctx, kubeconfig, 2, nil)
	wcancel()
	if err != nil {
		t.Fatalf("wait for 2 Ready nodes: %v", err)
	}
	t.Logf("2 nodes Ready %v after the creation began", time.Since(begin).Round(time.Millisecond))
	volumes := anonymousVolumes(ctx, t, docker, name)

	imported := time.Now()
	if err := m.ImportImages(ctx, name, []string{workload}); err != nil {
		t.Fatalf("import %s: %v", workload, err)
	}
	t.Logf("imported %s into the nodes in %v", workload, time.Since(imported).Round(time.Millisecond))

	cs := clientset(t, kubeconfig)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("%d nodes, want 2", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		info := n.Status.NodeInfo
		if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || !strings.HasPrefix(info.KubeletVersion, "v1.") {
			t.Errorf("node %s reports runtime %q, kubelet %q; want containerd and a kubelet", n.Name, info.ContainerRuntimeVersion, info.KubeletVersion)
		}
	}

	tests := make([]struct{ node, pod, podCIDR string }, 0, len(nodes.Items))
	for i, n := range nodes.Items {
		tests = append(tests, struct{ node, pod, podCIDR string }{n.Name, fmt.Sprintf("hello-%d", i), n.Spec.PodCIDR})
	}
	for _, tt := range tests {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, helloPod(tt.pod, tt.node, workload), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", tt.pod, err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			started := time.Now()
			p, err := waitPodReady(ctx, cs, "default", tt.pod, 2*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("pod %s Ready on %s %v after its creation", tt.pod, tt.node, time.Since(started).Round(time.Millisecond))
			if p.Spec.NodeName != tt.node {
				t.Errorf("pod %s runs on %s, want %s", tt.pod, p.Spec.NodeName, tt.node)
			}
			if len(p.Status.ContainerStatuses) != 1 {
				t.Fatalf("pod %s has %d container statuses, want 1", tt.pod, len(p.Status.ContainerStatuses))
			}
			st := p.Status.ContainerStatuses[0]
			if !strings.HasPrefix(st.ContainerID, "containerd://") || st.State.Running == nil || !st.Ready {
				t.Errorf("container of %s: id %q, state %+v, ready %v; want a running, ready containerd container", tt.pod, st.ContainerID, st.State, st.Ready)
			}
			if _, cidr, err := net.ParseCIDR(tt.podCIDR); err != nil || !cidr.Contains(net.ParseIP(p.Status.PodIP)) {
				t.Errorf("pod %s has IP %q, want one of its node's pod range %q (%v)", tt.pod, p.Status.PodIP, tt.podCIDR, err)
			}
			logs, err := cs.CoreV1().Pods("default").GetLogs(tt.pod, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				t.Fatalf("logs of %s through the API: %v", tt.pod, err)
			}
			if want := "hello from " + tt.pod + " on " + tt.node; !strings.Contains(string(logs), want) {
				t.Errorf("logs of %s = %q, want %q", tt.pod, logs, want)
			}
		})
	}

	existed, err := m.Delete(ctx, name, false)
	if err != nil || !existed {
		t.Fatalf("delete cluster: existed=%v, %v", existed, err)
	}
	deleted = true
	dockertest.AssertNothingLeft(t, docker, name)
	if left := leftovers(ctx, t, docker, name); len(left) > 0 {
		t.Errorf("after the deletion Docker still has: %v", left)
	}
	for _, v := range volumes {
		if _, err := docker.VolumeInspect(ctx, v); err == nil {
			t.Errorf("after the deletion the node volume %s is still there", v)
		}
	}
}

// helloPod is a pod on node that prints a line (the pod's and node's names,
// which only the container's environment knows) and becomes ready once it
// wrote its readiness file, checked by an exec probe.
func helloPod(name, node, image string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "hello",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", `echo "hello from $POD on $NODE"; echo ok >/tmp/ready; exec sleep 3600`},
				Env: []corev1.EnvVar{
					{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// waitPodReady waits until the pod is Running and Ready.
func waitPodReady(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not seen"
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ready := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					ready = c.Status == corev1.ConditionTrue
				}
			}
			if p.Status.Phase == corev1.PodRunning && ready {
				return p, nil
			}
			last = fmt.Sprintf("phase %s, ready %v, container statuses %+v", p.Status.Phase, ready, p.Status.ContainerStatuses)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s not Running and Ready within %v; last seen: %s", name, timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// anonymousVolumes lists the volumes mounted into the cluster's containers
// that k3d did not name: the node image's VOLUMEs, which carry no label of
// the cluster and must go with the containers.
func anonymousVolumes(ctx context.Context, t *testing.T, c *client.Client, name string) []string {
	t.Helper()
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	var out []string
	for _, ct := range cs {
		for _, mp := range ct.Mounts {
			if mp.Type == mount.TypeVolume && !strings.Contains(mp.Name, name) {
				out = append(out, mp.Name)
			}
		}
	}
	if len(out) == 0 {
		t.Errorf("the cluster's containers have no anonymous volumes: the node image declares none?")
	}
	return out
}
