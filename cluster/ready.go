package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// NodeStatus is a Kubernetes node and whether it is Ready.
type NodeStatus struct {
	Name  string
	Ready bool
	// Reason explains a node that is not Ready, from its Ready condition.
	Reason string
}

// NodeStatuses reads the nodes of the cluster the kubeconfig points at.
func NodeStatuses(ctx context.Context, kubeconfig []byte) ([]NodeStatus, error) {
	cs, err := clientset(kubeconfig)
	if err != nil {
		return nil, err
	}
	return nodeStatuses(ctx, cs)
}

func clientset(kubeconfig []byte) (kubernetes.Interface, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	rc.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return cs, nil
}

func nodeStatuses(ctx context.Context, cs kubernetes.Interface) ([]NodeStatus, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]NodeStatus, 0, len(list.Items))
	for _, n := range list.Items {
		s := NodeStatus{Name: n.Name, Reason: "no Ready condition reported yet"}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				s.Ready = c.Status == corev1.ConditionTrue
				s.Reason = strings.TrimSpace(c.Reason + " " + c.Message)
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WaitForNodes polls the API until want nodes are registered and Ready, or
// ctx ends. report, when set, is called after every poll.
func WaitForNodes(ctx context.Context, kubeconfig []byte, want int, interval time.Duration, report func([]NodeStatus)) error {
	cs, err := clientset(kubeconfig)
	if err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last []NodeStatus
	var lastErr error
	for {
		nodes, err := nodeStatuses(ctx, cs)
		if err == nil {
			last, lastErr = nodes, nil
			if report != nil {
				report(nodes)
			}
			if countReady(nodes) >= want {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d Ready nodes: %s: %w", want, describeWait(last, lastErr), ctx.Err())
		case <-t.C:
		}
	}
}

func countReady(nodes []NodeStatus) int {
	n := 0
	for _, s := range nodes {
		if s.Ready {
			n++
		}
	}
	return n
}

func describeWait(nodes []NodeStatus, err error) string {
	if err != nil && len(nodes) == 0 {
		return fmt.Sprintf("the API did not answer (%v)", err)
	}
	var parts []string
	for _, n := range nodes {
		if !n.Ready {
			parts = append(parts, fmt.Sprintf("%s not Ready (%s)", n.Name, n.Reason))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("only %d nodes registered", len(nodes))
	}
	return strings.Join(parts, "; ")
}

// WaitReady waits until want nodes of the cluster the kubeconfig points at
// are Ready; see WaitForNodes.
func (m *Manager) WaitReady(ctx context.Context, kubeconfig []byte, want int, report func([]NodeStatus)) error {
	return WaitForNodes(ctx, kubeconfig, want, 2*time.Second, report)
}

// Statuses reads the nodes of the cluster the kubeconfig points at.
func (m *Manager) Statuses(ctx context.Context, kubeconfig []byte) ([]NodeStatus, error) {
	return NodeStatuses(ctx, kubeconfig)
}
