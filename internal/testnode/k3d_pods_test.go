//go:build !race

package testnode_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
// a container ID from containerd, an httpGet readiness probe passed (and an
// exec liveness probe), its output read through the API (`kubectl logs`: API
// server → kubelet over TLS), its IP from the node's pod range. A pod on the
// server then fetches the agent's pod by its IP and through a Service, and a
// pod on the agent through the Service (each node's kube-proxy); k3s's
// add-ons work (checkAddons: CoreDNS, metrics-server, local-path). The agent
// joined by TLS bootstrap (checkNodeIdentities), and exec through the API
// reaches its pod. The agent's container is stopped and started, and its
// pod runs again in a new container (logs and exec again). The nodes report a containerd runtime and a kubelet, every
// component logs under its name, and the host's kernel settings that a
// kubelet would change stay as they were. After the deletion Docker holds nothing of the cluster, the nodes'
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

	kernelBefore := hostKernelSettings(t)
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
	podIPs := map[string]string{}
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
			if logs, want := podLogs(ctx, t, cs, "default", tt.pod), "hello from "+tt.pod+" on "+tt.node; !strings.Contains(logs, want) {
				t.Errorf("logs of %s = %q, want %q", tt.pod, logs, want)
			}
			podIPs[tt.node] = p.Status.PodIP
		})
	}

	// Across the nodes: a pod on the server fetches the agent's pod by its
	// IP (the route between the nodes' pod ranges) and through a Service
	// (kube-proxy's rules on the server node).
	var srv, agt, agtPod string
	for _, tt := range tests {
		if strings.Contains(tt.node, "-server-") {
			srv = tt.node
		} else {
			agt, agtPod = tt.node, tt.pod
		}
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"pod": agtPod},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	if podIPs[agt] == "" || srv == "" {
		t.Fatalf("no pod IP on the agent (%v) or no server node", podIPs)
	}
	// The agent's kube-proxy (system:kube-proxy, its own certificate) has
	// the Service's rules too: a pod on the agent fetches through it.
	clients := []struct {
		name, node string
		addrs      []string
	}{
		{"client", srv, []string{podIPs[agt] + ":8080", svc.Spec.ClusterIP + ":80"}},
		{"client-agent", agt, []string{svc.Spec.ClusterIP + ":80"}},
	}
	for _, c := range clients {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, clientPod(c.name, c.node, workload, c.addrs...), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", c.name, err)
		}
	}
	for _, c := range clients {
		phase, err := waitPodDone(ctx, cs, "default", c.name, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		logs := podLogs(ctx, t, cs, "default", c.name)
		if want := "hello from " + agtPod + " on " + agt; phase != corev1.PodSucceeded || strings.Count(logs, want) != len(c.addrs) {
			t.Errorf("the pod on %s fetching %s's pod at %v: phase %s, output %q; want it to succeed with %q %d times", c.node, agt, c.addrs, phase, logs, want, len(c.addrs))
		}
	}

	// The agent joined by TLS bootstrap and its kubelet runs as
	// system:node:<agent>; exec through the API reaches that kubelet.
	checkNodeIdentities(ctx, t, docker, cs, kubeconfig, agt)
	if out, want := podExec(ctx, t, kubeconfig, cs, "default", agtPod, "cat", "/tmp/www/index.html"), "hello from "+agtPod+" on "+agt; !strings.Contains(out, want) {
		t.Errorf("exec in %s through the API printed %q, want %q", agtPod, out, want)
	}

	// k3s's add-ons, deployed by the server: cluster DNS, the metrics API,
	// the default StorageClass.
	checkAddons(ctx, t, addonsCase{cs: cs, docker: docker, workload: workload, agent: agt, service: svc, pod: agtPod})

	// The agent's container stops and starts again (node failure and
	// recovery): its kubelet runs the pod again in a new container, on the
	// containerd state the stopped container left.
	before, err := cs.CoreV1().Pods("default").Get(ctx, agtPod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", agtPod, err)
	}
	restarted := time.Now()
	if err := m.StopNode(ctx, name, agt); err != nil {
		t.Fatalf("stop %s: %v", agt, err)
	}
	if err := m.StartNode(ctx, name, agt); err != nil {
		t.Fatalf("start %s: %v", agt, err)
	}
	after, err := waitPodRestarted(ctx, cs, "default", agtPod, before.Status.ContainerStatuses[0].ContainerID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod %s Ready again in a new container %v after %s was stopped", agtPod, time.Since(restarted).Round(time.Millisecond), agt)
	if logs, want := podLogs(ctx, t, cs, "default", agtPod), "hello from "+agtPod+" on "+agt; !strings.Contains(logs, want) {
		t.Errorf("logs of %s after the restart = %q, want %q", agtPod, logs, want)
	}
	if out, want := podExec(ctx, t, kubeconfig, cs, "default", agtPod, "cat", "/tmp/www/index.html"), "hello from "+agtPod+" on "+agt; !strings.Contains(out, want) {
		t.Errorf("exec in %s through the API after the restart printed %q, want %q", agtPod, out, want)
	}
	if _, cidr, err := net.ParseCIDR(before.Status.PodIP + "/24"); err != nil || !cidr.Contains(net.ParseIP(after.Status.PodIP)) {
		t.Errorf("pod %s has IP %q after the restart, want one of its node's range (it had %s)", agtPod, after.Status.PodIP, before.Status.PodIP)
	}

	// Every component logs into the node container's log under its name,
	// and the server said k3d's ready line.
	for _, node := range []string{srv, agt} {
		nodeLog := containerLog(ctx, t, docker, node)
		for _, want := range []string{"[containerd] ", "[kubelet] ", "[kube-proxy] "} {
			if !strings.Contains(nodeLog, want) {
				t.Errorf("the log of %s has no line of %s", node, want)
			}
		}
		if node == srv && !strings.Contains(nodeLog, "k3s is up and running") {
			t.Errorf("the server's log lacks k3d's ready line")
		}
	}
	// The kubelets ran in privileged containers: the kernel settings they
	// set when they differ from theirs are the host's, and must be as they
	// were.
	if diff := cmp.Diff(kernelBefore, hostKernelSettings(t)); diff != "" {
		t.Errorf("the host's kernel settings changed (-before +after):\n%s", diff)
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
// which only the container's environment knows) and serves it over HTTP on
// port 8080 (busybox httpd), ready when the kubelet gets it over the pod
// network (an httpGet probe), alive while an exec probe reads it.
func helloPod(name, node, image string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test", "pod": name}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "hello",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", `msg="hello from $POD on $NODE"; echo "$msg"; busybox mkdir -p /tmp/www; ` +
					`echo "$msg" >/tmp/www/index.html; exec busybox httpd -f -p 8080 -h /tmp/www`},
				Env: []corev1.EnvVar{
					{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}},
					PeriodSeconds: 1,
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/www/index.html"}}},
					PeriodSeconds: 2,
				},
			}},
		},
	}
}

// clientPod is a pod on node that gets /index.html from each address
// (host:port) over HTTP, up to 10 tries a second apart (kube-proxy may not
// have the Service's rules yet), printing what it got, and succeeds when
// every fetch did. It speaks HTTP through busybox nc: Debian's static busybox
// wget crashes (SIGSEGV) before it connects.
func clientPod(name, node, image string, addrs ...string) *corev1.Pod {
	script := "for a in " + strings.Join(addrs, " ") + `; do n=0; ` +
		`until printf 'GET /index.html HTTP/1.0\r\n\r\n' | busybox nc -w 3 "${a%:*}" "${a##*:}" | busybox grep -q hello; do ` +
		`n=$((n+1)); [ "$n" -lt 10 ] || exit 1; echo "retrying $a" >&2; sleep 1; done; ` +
		`printf 'GET /index.html HTTP/1.0\r\n\r\n' | busybox nc -w 3 "${a%:*}" "${a##*:}"; done`
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "lab-test"}},
		Spec: corev1.PodSpec{
			NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "client", Image: image, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// waitPodDone waits until the pod has succeeded or failed and returns its
// phase.
func waitPodDone(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) (corev1.PodPhase, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			return p.Status.Phase, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s not done within %v: %w", name, timeout, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// podLogs returns the pod's log through the API (the API server gets it
// from the kubelet, over TLS both ways).
func podLogs(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	b, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s through the API: %v", name, err)
	}
	return string(b)
}

// waitPodReady waits until the pod is Running and Ready.
func waitPodReady(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var last string
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

// waitPodRestarted waits until the pod is Ready in a container other than
// oldID.
func waitPodRestarted(ctx context.Context, cs kubernetes.Interface, ns, name, oldID string, timeout time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var last string
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(p.Status.ContainerStatuses) == 1 {
			st := p.Status.ContainerStatuses[0]
			if st.Ready && st.State.Running != nil && st.ContainerID != oldID {
				return p, nil
			}
			last = fmt.Sprintf("%+v", st)
		} else if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s not Ready in a new container within %v; last seen: %s", name, timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// hostKernelSettings reads the kernel settings that a kubelet sets when
// they differ from its own values.
func hostKernelSettings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"} {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatalf("read the host's kernel setting %s: %v", k, err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
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
