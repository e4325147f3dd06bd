package kube

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// TestNodeFailureOnSimulatedNode stops a node that runs web pods, with the
// real node lifecycle, taint eviction, replicaset controllers and scheduler:
// the pods are evicted and run Ready on the other nodes; the times are
// measured and printed.
func TestNodeFailureOnSimulatedNode(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ns := env.Namespace(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ctx := t.Context()

	labels := map[string]string{"app": "web"}
	replicas := int32(3)
	short := int64(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "127.0.0.1:5999/shop:test"}},
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &short},
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &short},
					},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var victim string
	var onVictim int
	deadline := time.Now().Add(time.Minute)
	for victim == "" {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		perNode := map[string]int{}
		for _, p := range pods.Items {
			if podIsReady(&p) {
				ready++
				perNode[p.Spec.NodeName]++
			}
		}
		if ready == 3 {
			for n, c := range perNode {
				if c > onVictim {
					victim, onVictim = n, c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("web pods not Ready after a minute: %d", ready)
		}
		time.Sleep(200 * time.Millisecond)
	}

	res, err := RunNodeFailure(ctx, controlplane.ClusterNodes{Env: env}, kube, NodeFailureOptions{
		// Down long enough for the eviction: not Ready after a few
		// seconds, the 2 s toleration, then the taint manager, which a
		// loaded machine slows (12 s was once too short in CI).
		Node: victim, Namespace: ns, Down: 20 * time.Second, ReadyTimeout: time.Minute, Poll: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("RunNodeFailure: %v", err)
	}
	if res.NotReadyAt.IsZero() {
		t.Error("the node was never seen not Ready")
	}
	if len(res.Pods) != onVictim {
		t.Errorf("followed %d pods, %d ran on %s", len(res.Pods), onVictim, victim)
	}
	for _, p := range res.Pods {
		if p.EvictedAt.IsZero() || !p.Rescheduled() || p.ReplacementNode == victim {
			t.Errorf("pod %s: evicted at %v, replacement %q on %q", p.Pod, p.EvictedAt, p.Replacement, p.ReplacementNode)
			continue
		}
		t.Logf("pod %s: evicted %v after the stop, %s Ready on %s %v after the stop",
			p.Pod, p.EvictedAt.Sub(res.StoppedAt).Round(100*time.Millisecond), p.Replacement, p.ReplacementNode, p.ReadyAt.Sub(res.StoppedAt).Round(100*time.Millisecond))
	}
	t.Logf("node %s: not Ready %v after the stop; Ready again %v after the start",
		victim, res.NotReadyAt.Sub(res.StoppedAt).Round(100*time.Millisecond), res.ReadyAgainAt.Sub(res.StartedAt).Round(100*time.Millisecond))
}

// TestNodeFailureStartsNodeWhenCancelled cancels the experiment while the
// node is down: the node must be started again anyway.
func TestNodeFailureStartsNodeWhenCancelled(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	node := env.Nodes()[2]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := RunNodeFailure(ctx, controlplane.ClusterNodes{Env: env}, kube, NodeFailureOptions{
		Node: node, Namespace: "default", Down: time.Minute, ReadyTimeout: time.Minute, Poll: 200 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("RunNodeFailure survived its context")
	}
	n, gerr := kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if gerr != nil || !nodeIsReady(n) {
		t.Fatalf("node %s not Ready after a cancelled experiment (%v)", node, gerr)
	}
}
