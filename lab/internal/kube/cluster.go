package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// ChaosMeshReady checks that Chaos Mesh's controller and its daemon on
// every node are ready: without them every fault would be "not injected".
func ChaosMeshReady(ctx context.Context, kube kubernetes.Interface, ns string) error {
	deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("check Chaos Mesh: %w", err)
	}
	sets, err := kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("check Chaos Mesh: %w", err)
	}
	fix := "  fix: `kubectl -n " + ns + " get pods` shows why; `lab up` installs or repairs Chaos Mesh"
	if len(deps.Items) == 0 {
		return fmt.Errorf("chaos mesh is not installed: no Deployment in namespace %s\n%s", ns, fix)
	}
	var problems []string
	for _, d := range deps.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ReadyReplicas < want {
			problems = append(problems, fmt.Sprintf("Deployment %s has %d of %d replicas ready", d.Name, d.Status.ReadyReplicas, want))
		}
	}
	for _, ds := range sets.Items {
		if ds.Status.NumberReady < ds.Status.DesiredNumberScheduled || ds.Status.DesiredNumberScheduled == 0 {
			problems = append(problems, fmt.Sprintf("DaemonSet %s is ready on %d of %d nodes", ds.Name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("chaos mesh is not ready: %s\n%s", strings.Join(problems, "; "), fix)
	}
	return nil
}

// BusiestAgent picks the agent node that runs the most pods of the
// namespace, so that the node-failure experiment moves as much as it can,
// among the agents that run no pod spare selects: the prober's, whose
// record of the run must not be evicted with the node.
func BusiestAgent(ctx context.Context, kube kubernetes.Interface, namespace string, spare map[string]string) (string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	count := map[string]int{}
	for _, n := range nodes.Items {
		if _, server := n.Labels["node-role.kubernetes.io/control-plane"]; !server {
			count[n.Name] = 0
		}
	}
	if len(count) == 0 {
		return "", errors.New("no agent node to stop: the node-failure experiment needs a cluster with agents")
	}
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	var spared []string
	for _, p := range pods.Items {
		if _, ok := count[p.Spec.NodeName]; ok {
			count[p.Spec.NodeName]++
		}
	}
	for _, p := range pods.Items {
		if _, agent := count[p.Spec.NodeName]; agent && len(spare) > 0 && p.DeletionTimestamp == nil && labels.SelectorFromSet(spare).Matches(labels.Set(p.Labels)) {
			delete(count, p.Spec.NodeName)
			spared = append(spared, fmt.Sprintf("%s (runs %s)", p.Spec.NodeName, p.Name))
		}
	}
	if len(count) == 0 {
		return "", fmt.Errorf("no agent node to stop: every agent runs a pod the node failure must spare: %s", strings.Join(spared, ", "))
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	return names[0], nil
}
