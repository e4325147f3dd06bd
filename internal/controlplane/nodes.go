package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/kwokstages"
)

// The simulated nodes are named like the nodes of the k3d cluster lab creates
// (1 server, 2 agents).
const (
	serverNode = "k3d-jewelry-shop-server-0"
	agentNode0 = "k3d-jewelry-shop-agent-0"
	agentNode1 = "k3d-jewelry-shop-agent-1"
)

// kubeletLabel marks the nodes whose kubelet is "running": kwok manages
// (heartbeats, runs the pods of) exactly the nodes that carry it. Removing it
// is what StopNode does. It is a label, not an annotation, because kwok
// selects annotations on its side and keeps managing a node whose annotation
// disappears, while a label selector is applied by the API server's watch,
// which reports the node as gone from the selection.
const kubeletLabel = "kwok.x-k8s.io/node"

// kubeletRunning is kubeletLabel's value on a running node.
const kubeletRunning = "fake"

// Timing of node failure detection. kwok renews each node's Lease every
// quarter of the lease duration; kube-controller-manager marks a node whose
// Lease was not renewed for the grace period as not ready (Ready=Unknown) and
// taints it node.kubernetes.io/unreachable:NoExecute, and the taint eviction
// controller evicts its pods once their toleration of that taint expires.
// Real clusters use 40 s; these keep node failure tests short.
const (
	nodeLeaseDurationSeconds = 4
	nodeMonitorPeriod        = time.Second
	nodeMonitorGracePeriod   = 6 * time.Second
)

// controllers returns the kube-controller-manager controllers that run: the
// ones that workloads, namespaces, services, node failures and autoscaling
// need. The HPA controller runs, but without a metrics API it can only report
// that metrics are missing.
func controllers() []string {
	return []string{
		"deployment-controller",
		"replicaset-controller",
		"statefulset-controller",
		"daemonset-controller",
		"job-controller",
		"namespace-controller",
		"garbage-collector-controller",
		"endpoints-controller",
		"endpointslice-controller",
		"serviceaccount-controller",
		"disruption-controller",
		"node-lifecycle-controller",
		"taint-eviction-controller",
		"pod-garbage-collector-controller",
		"horizontal-pod-autoscaler-controller",
	}
}

// realNodeControllers are the controllers that real nodes need beyond
// controllers(): Endpoints that a test writes itself (a PostgreSQL stand-in,
// metrics-server outside the cluster) mirrored into the EndpointSlices that
// kube-proxy and the API server read, and persistent volumes bound and
// protected as on k3s.
func realNodeControllers() []string {
	return []string{
		"endpointslice-mirroring-controller",
		"persistentvolume-binder-controller",
		"persistentvolume-protection-controller",
		"persistentvolumeclaim-protection-controller",
	}
}

// realNodeMonitorGracePeriod is how long a real node's Lease may go
// unrenewed before it is not ready: lab's k3s server argument.
const realNodeMonitorGracePeriod = 20 * time.Second

// nodeNames returns the simulated nodes' names, the server first.
func nodeNames() []string {
	return []string{serverNode, agentNode0, agentNode1}
}

// Nodes returns the names of the simulated nodes, the server first. They
// exist once a test started the control plane with Options.Nodes.
func (e *Env) Nodes() []string {
	return nodeNames()
}

// newNode returns a simulated node with the labels k3s puts on its nodes.
func newNode(name string) *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname":           name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"beta.kubernetes.io/os":            "linux",
		"beta.kubernetes.io/arch":          "amd64",
		"node.kubernetes.io/instance-type": "k3s",
		kubeletLabel:                       kubeletRunning,
	}
	if name == serverNode {
		labels["node-role.kubernetes.io/control-plane"] = "true"
		labels["node-role.kubernetes.io/master"] = "true"
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources,
		},
	}
}

// startControllers starts kube-controller-manager and kube-scheduler.
// Simulated nodes renew their Leases every second and are declared dead after
// a few; real ones renew every 10 s and are given the 20 s of lab's k3s server
// arguments.
func (e *Env) startControllers(ctx context.Context) error {
	kc := "--kubeconfig=" + e.Kubeconfig
	ctrls, grace, hpaSync := controllers(), nodeMonitorGracePeriod, 5*time.Second
	if e.realNodes {
		ctrls, grace, hpaSync = append(ctrls, realNodeControllers()...), realNodeMonitorGracePeriod, 15*time.Second
	}
	components := []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			kc,
			"--secure-port=0",
			"--leader-elect=false",
			"--controllers=" + strings.Join(ctrls, ","),
			"--node-monitor-period=" + nodeMonitorPeriod.String(),
			"--node-monitor-grace-period=" + grace.String(),
			"--horizontal-pod-autoscaler-sync-period=" + hpaSync.String(),
			"--concurrent-gc-syncs=5",
		}},
		{"kube-scheduler", []string{
			kc,
			"--secure-port=0",
			"--leader-elect=false",
		}},
	}
	for _, c := range components {
		p, err := startProcess(ctx, e.logger, e.workDir, c.name, filepath.Join(e.assets, c.name), c.args, nil)
		if err != nil {
			return err
		}
		e.procs = append(e.procs, p)
	}
	e.controllers = true
	return nil
}

// startNodes starts kube-controller-manager, kube-scheduler and kwok, creates
// the simulated nodes and waits until they are Ready.
func (e *Env) startNodes(ctx context.Context) error {
	// An explicit configuration also keeps a developer's ~/.kwok/kwok.yaml
	// out of the tests.
	kwokConfig := filepath.Join(e.workDir, "kwok.yaml")
	if err := os.WriteFile(kwokConfig, kwokstages.YAML(), 0o600); err != nil {
		return fmt.Errorf("write the kwok configuration: %w", err)
	}
	if !e.controllers {
		if err := e.startControllers(ctx); err != nil {
			return err
		}
	}
	kc := "--kubeconfig=" + e.Kubeconfig
	components := []struct {
		name string
		args []string
		env  []string
	}{
		{"kwok", []string{
			kc,
			"--config=" + kwokConfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-label-selector=" + kubeletLabel + "=" + kubeletRunning,
			fmt.Sprintf("--node-lease-duration-seconds=%d", nodeLeaseDurationSeconds),
			// k3s's pod CIDR; the services have envtest's 10.0.0.0/24.
			"--cidr=10.42.0.1/16",
			"--node-ip=127.0.0.1",
			"--node-port=0",
		}, []string{"KWOK_WORKDIR=" + e.workDir}},
	}
	for _, c := range components {
		p, err := startProcess(ctx, e.logger, e.workDir, c.name, filepath.Join(e.assets, c.name), c.args, c.env)
		if err != nil {
			return err
		}
		e.procs = append(e.procs, p)
	}
	for _, name := range nodeNames() {
		if err := e.Client.Create(ctx, newNode(name)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	e.nodes = true
	for _, name := range nodeNames() {
		if err := e.waitNode(ctx, name, time.Minute, true); err != nil {
			return err
		}
	}
	return nil
}

// checkProcesses returns an error for the first of the helper's processes
// that has exited.
func (e *Env) checkProcesses() error {
	for _, p := range e.procs {
		if p.exited() {
			return processError(p)
		}
	}
	return nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitNode waits until the node's readiness is ready, or fails after timeout
// or when a process of the control plane died.
func (e *Env) waitNode(ctx context.Context, name string, timeout time.Duration, ready bool) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := e.checkProcesses(); err != nil {
			return false, err
		}
		var n corev1.Node
		if err := e.Client.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
			last = err.Error()
			return false, nil //nolint:nilerr // retried until the timeout
		}
		last = fmt.Sprintf("conditions %v, taints %v", n.Status.Conditions, n.Spec.Taints)
		return NodeReady(&n) == ready, nil
	})
	if err != nil {
		return fmt.Errorf("wait for node %s to be ready=%t (last seen: %s): %w", name, ready, last, err)
	}
	return nil
}

// StopNode makes a simulated node fail the way a node whose kubelet died
// does: its Lease is no longer renewed and its pods are no longer looked
// after. It returns at once; the node lifecycle controller marks the node not
// ready after a few seconds, taints it unreachable, and pods that tolerate
// that taint for a short time are then evicted. Use WaitNodeReady to wait for
// the node to be seen as down, and StartNode (in t.Cleanup) to bring it back.
func (e *Env) StopNode(ctx context.Context, name string) error {
	if !e.nodes {
		return fmt.Errorf("stop node %s: the control plane runs no simulated nodes (Options.Nodes)", name)
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{%q:null}}}`, kubeletLabel))
	if err := e.Client.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, patch); err != nil {
		return fmt.Errorf("stop node %s: %w", name, err)
	}
	return nil
}

// StartNode brings a node stopped by StopNode back: kwok manages it again,
// renews its Lease and reports it Ready. It returns once the node is Ready.
func (e *Env) StartNode(ctx context.Context, name string) error {
	if !e.nodes {
		return fmt.Errorf("start node %s: the control plane runs no simulated nodes (Options.Nodes)", name)
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, kubeletLabel, kubeletRunning))
	if err := e.Client.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, patch); err != nil {
		return fmt.Errorf("start node %s: %w", name, err)
	}
	return e.waitNode(ctx, name, time.Minute, true)
}

// WaitNodeReady waits until the node's Ready condition is True (ready) or not
// True (not ready), for at most timeout.
func (e *Env) WaitNodeReady(ctx context.Context, name string, ready bool, timeout time.Duration) error {
	return e.waitNode(ctx, name, timeout, ready)
}

// ClusterNodes stops and starts the simulated nodes as *cluster.Manager
// stops and starts k3d node containers (what node failure needs); the
// cluster name is not used.
type ClusterNodes struct{ Env *Env }

// StopNode stops the simulated node.
func (c ClusterNodes) StopNode(ctx context.Context, _, node string) error {
	return c.Env.StopNode(ctx, node)
}

// StartNode starts the simulated node again.
func (c ClusterNodes) StartNode(ctx context.Context, _, node string) error {
	return c.Env.StartNode(ctx, node)
}
