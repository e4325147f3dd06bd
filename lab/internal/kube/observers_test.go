package kube

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"

	"github.com/jewelry-shop/lab/lab/judge"
)

// TestReplicaObserver follows a Deployment and an HPA through the
// client-go fake clientset: the observer records each change of the Ready
// replicas and of the HPA's replicas, and says when the HPA is missing.
func TestReplicaObserver(t *testing.T) {
	t.Parallel()
	const ns = "jewelry-shop"
	three, ten := int32(3), int32(10)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Replicas: &three},
		Status:     appsv1.DeploymentStatus{ReadyReplicas: 3},
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &three, MaxReplicas: ten},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3},
	}
	tests := []struct {
		name        string
		hpa         string
		ready, hpas []int32 // the counts set one after the other
		wantReady   []int32
		wantHPA     []int32
		wantMissing string
	}{
		{
			name: "pod kill and scale", hpa: "web", ready: []int32{2, 2, 3}, hpas: []int32{5, 7, 3},
			wantReady: []int32{3, 2, 3}, wantHPA: []int32{3, 5, 7, 3},
		},
		{
			name: "no such HPA", hpa: "other", ready: []int32{3}, hpas: []int32{3},
			wantReady: []int32{3}, wantMissing: "HPA jewelry-shop/other not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := fake.NewClientset(deploy.DeepCopy(), hpa.DeepCopy())
			var polls atomic.Int64
			obs := ReplicaObserver{
				Kube: kube, Namespace: ns, Deployment: "web", HPA: tt.hpa, Poll: 5 * time.Millisecond,
				Now: func() time.Time { polls.Add(1); return time.Now() },
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type result struct {
				r   judge.Replicas
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := obs.Observe(ctx)
				done <- result{r, err}
			}()
			// waitPolls lets the observer poll twice more.
			waitPolls := func() {
				n := polls.Load()
				for polls.Load() < n+4 {
					time.Sleep(time.Millisecond)
				}
			}
			waitPolls()
			for i := range tt.ready {
				d := deploy.DeepCopy()
				d.Status.ReadyReplicas = tt.ready[i]
				if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				h := hpa.DeepCopy()
				h.Status.CurrentReplicas = tt.hpas[i]
				if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(ctx, h, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				waitPolls()
			}
			cancel()
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			counts := func(ps []measure.ReplicaPoint) []int32 {
				var out []int32
				for _, p := range ps {
					out = append(out, p.Replicas)
				}
				return out
			}
			got := struct {
				Ready, HPA []int32
				Missing    string
			}{counts(res.r.Ready), counts(res.r.HPAReplicas), res.r.HPAMissing}
			want := struct {
				Ready, HPA []int32
				Missing    string
			}{tt.wantReady, tt.wantHPA, tt.wantMissing}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("observed (-want +got):\n%s", diff)
			}
			if tt.wantMissing == "" && (res.r.Min != 3 || res.r.Max != 10) {
				t.Errorf("HPA bounds %d..%d, want 3..10", res.r.Min, res.r.Max)
			}
		})
	}
}

func TestPodUsage(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"kind":"PodMetricsList","items":[
		{"metadata":{"name":"web-1"},"containers":[{"name":"web","usage":{"cpu":"250m","memory":"100Mi"}},{"name":"sidecar","usage":{"cpu":"1500000n","memory":"1Mi"}}]},
		{"metadata":{"name":"web-2"},"containers":[{"name":"web","usage":{"cpu":"1","memory":"128Mi"}}]},
		{"metadata":{"name":"web-3"},"containers":[{"name":"web","usage":{"cpu":"10m","memory":"10Mi"}}]}]}`)
	limited := func(name string, containers ...corev1.ResourceList) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, l := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Resources: corev1.ResourceRequirements{Limits: l}})
		}
		return p
	}
	pods := []corev1.Pod{
		limited("web-1", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}),
		limited("web-2", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")}),
	}
	got, err := podUsage(raw, pods)
	if err != nil {
		t.Fatal(err)
	}
	want := judge.Usage{CPUMilli: 250 + 2 + 1000 + 10, MemoryBytes: (100 + 1 + 128 + 10) << 20, Pods: 3, PerPod: []judge.PodUsage{
		// The sidecar has no memory limit: the pod's is not known.
		{Pod: "web-1", CPUMilli: 252, MemoryBytes: 101 << 20, CPULimitMilli: 600},
		{Pod: "web-2", CPUMilli: 1000, MemoryBytes: 128 << 20, CPULimitMilli: 1000, MemoryLimitBytes: 256 << 20},
		// Not among the pods read: no limits known.
		{Pod: "web-3", CPUMilli: 10, MemoryBytes: 10 << 20},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("podUsage (-want +got):\n%s", diff)
	}
	if _, err := podUsage([]byte("not json"), nil); err == nil {
		t.Error("bad JSON accepted")
	}
}

// TestHealthChecks reads the probes of the live workloads: a workload
// counts as probed only when every container has the probe.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
	cs := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", ReadinessProbe: probe, LivenessProbe: probe}},
		}}}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "postgres", ReadinessProbe: probe}, {Name: "exporter", ReadinessProbe: probe, LivenessProbe: probe}},
		}}}},
	)
	probes, err := HealthChecks{Kube: cs, Namespace: "shop"}.Probes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []reports.WorkloadProbes{{Workload: "Deployment/web", Readiness: true, Liveness: true}, {Workload: "StatefulSet/db", Readiness: true, Liveness: false}}
	if diff := cmp.Diff(want, probes); diff != "" {
		t.Fatalf("probes (-want +got):\n%s", diff)
	}
}

func TestChaosMeshReady(t *testing.T) {
	t.Parallel()
	one := int32(1)
	dep := func(ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-controller-manager", Namespace: "chaos-mesh"},
			Spec:       appsv1.DeploymentSpec{Replicas: &one}, Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
		}
	}
	daemon := func(ready, want int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-daemon", Namespace: "chaos-mesh"},
			Status:     appsv1.DaemonSetStatus{NumberReady: ready, DesiredNumberScheduled: want},
		}
	}
	tests := []struct {
		name string
		objs []runtime.Object
		want string
	}{
		{"ready", []runtime.Object{dep(1), daemon(3, 3)}, ""},
		{"not installed", nil, "chaos mesh is not installed"},
		{"controller down", []runtime.Object{dep(0), daemon(3, 3)}, "chaos-controller-manager has 0 of 1 replicas ready"},
		{"daemon missing on a node", []runtime.Object{dep(1), daemon(2, 3)}, "chaos-daemon is ready on 2 of 3 nodes"},
	}
	for _, tt := range tests {
		err := ChaosMeshReady(t.Context(), fake.NewClientset(tt.objs...), "chaos-mesh")
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestBusiestAgentSparesTheProber: node failure stops the agent with the
// most pods of the namespace, but never the one the prober runs on, whose
// record of the run would be evicted with it.
func TestBusiestAgentSparesTheProber(t *testing.T) {
	t.Parallel()
	node := func(name string, server bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if server {
			n.Labels["node-role.kubernetes.io/control-plane"] = "true"
		}
		return n
	}
	pod := func(name, node, component string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": component}},
			Spec:       corev1.PodSpec{NodeName: node},
		}
	}
	prober := map[string]string{"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "probe"}
	tests := []struct {
		name string
		objs []runtime.Object
		want string
		err  string
	}{
		{"the busiest agent runs the prober", []runtime.Object{
			node("server-0", true), node("agent-0", false), node("agent-1", false),
			pod("web-1", "agent-0", "web"), pod("web-2", "agent-0", "web"), pod("probe-1", "agent-0", "probe"), pod("web-3", "agent-1", "web"),
		}, "agent-1", ""},
		{"the prober on the server", []runtime.Object{
			node("server-0", true), node("agent-0", false), node("agent-1", false),
			pod("web-1", "agent-0", "web"), pod("web-2", "agent-0", "web"), pod("probe-1", "server-0", "probe"), pod("web-3", "agent-1", "web"),
		}, "agent-0", ""},
		{"only the prober's agent", []runtime.Object{
			node("server-0", true), node("agent-0", false), pod("probe-1", "agent-0", "probe"),
		}, "", "every agent runs a pod the node failure must spare: agent-0 (runs probe-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := BusiestAgent(t.Context(), fake.NewClientset(tt.objs...), "shop", prober)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("BusiestAgent = %q, %v; want an error saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("BusiestAgent = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestClusterFacts: the environment names the nodes' kubelets, Chaos Mesh's
// controller (a stand-in as one) and the images the stack runs.
func TestClusterFacts(t *testing.T) {
	t.Parallel()
	node := func(name, kubelet string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: kubelet, ContainerRuntimeVersion: "containerd://1.6.20", OSImage: "Debian GNU/Linux 12 (bookworm)"},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
	}
	controller := func(annotations map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-controller-manager", Namespace: "chaos-mesh", Annotations: annotations},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:5999/chaos-mesh:v2.8.3"}},
			}}},
		}
	}
	pod := func(name string, images ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
		for i, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprint("c", i), Image: img})
		}
		return p
	}
	tests := []struct {
		name string
		objs []runtime.Object
		want map[string]string
	}{
		{"no Chaos Mesh, no stack", []runtime.Object{node("a", "v1.37.2")}, map[string]string{
			"nodes":                 "1 (1 Ready): 1 × kubelet v1.37.2, containerd://1.6.20, Debian GNU/Linux 12 (bookworm)",
			FactKubelet:             "v1.37.2",
			"chaos mesh controller": "absent",
		}},
		{"upstream Chaos Mesh, a stack", []runtime.Object{
			node("a", "v1.33.6+k3s1"), node("b", "v1.33.6+k3s1"), controller(nil),
			pod("web-1", "127.0.0.1:5999/shop:1"), pod("web-2", "127.0.0.1:5999/shop:1"), pod("redis-0", "127.0.0.1:5999/redis:7", "127.0.0.1:5999/redis:7"),
		}, map[string]string{
			"nodes":                 "2 (2 Ready): 2 × kubelet v1.33.6+k3s1, containerd://1.6.20, Debian GNU/Linux 12 (bookworm)",
			FactKubelet:             "v1.33.6+k3s1",
			"chaos mesh controller": "127.0.0.1:5999/chaos-mesh:v2.8.3",
			"stack images":          "127.0.0.1:5999/redis:7, 127.0.0.1:5999/shop:1",
		}},
		{"a stand-in for Chaos Mesh", []runtime.Object{node("a", "v1.37.2"), controller(map[string]string{StandInAnnotation: "the test's, acting through the API"})}, map[string]string{
			"nodes":                 "1 (1 Ready): 1 × kubelet v1.37.2, containerd://1.6.20, Debian GNU/Linux 12 (bookworm)",
			FactKubelet:             "v1.37.2",
			"chaos mesh controller": "127.0.0.1:5999/chaos-mesh:v2.8.3 (stand-in: the test's, acting through the API)",
		}},
	}
	for _, tt := range tests {
		got, err := ClusterFacts(t.Context(), fake.NewClientset(tt.objs...), "chaos-mesh", "shop")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: facts (-want +got):\n%s", tt.name, diff)
		}
	}
}
