package charts

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// controlPlaneInstaller starts the test control plane with its simulated
// nodes and returns an Installer for it and a namespace of the test's own.
func controlPlaneInstaller(t *testing.T) (*controlplane.Env, *Installer, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the test control plane; skipped with -short")
	}
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewInstaller(kubeconfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in.pollInterval = time.Second
	return env, in, env.Namespace(t)
}

// clusterValues adapt the chart to the test control plane, which has no
// storage provisioner: Redis keeps its data in an emptyDir.
var clusterValues = map[string]any{"redis": map[string]any{"persistence": map[string]any{"enabled": false}}}

// TestInstallOnControlPlane installs the jewelry-shop chart with wait on a
// real API server, scheduler and controllers with three simulated nodes,
// installs it again (an upgrade that changes nothing) and uninstalls it.
func TestInstallOnControlPlane(t *testing.T) {
	env, in, ns := controlPlaneInstaller(t)
	ctx := t.Context()
	rel, err := JewelryShop("full", "")
	if err != nil {
		t.Fatal(err)
	}
	rel = rel.WithValues(clusterValues)
	rel.Namespace = ns
	rel.Timeout = 3 * time.Minute
	var mu sync.Mutex
	var lines []string
	rel.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, p.String())
	}

	res, err := in.Install(ctx, rel)
	if err != nil {
		t.Fatalf("install with wait: %v", err)
	}
	t.Logf("install with wait took %v (revision %d); progress lines: %d, last: %q", res.Elapsed.Round(time.Millisecond), res.Revision, len(lines), last(lines))
	if res.Revision != 1 || res.Upgraded {
		t.Errorf("first install: revision %d upgraded %t", res.Revision, res.Upgraded)
	}

	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]int{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s, want Running", p.Name, p.Status.Phase)
		}
		nodes[p.Spec.NodeName]++
	}
	// full: web 3, nginx 3, worker 3, beat 1, probe 1, redis 3.
	if len(pods.Items) != 14 {
		t.Errorf("%d pods, want 14", len(pods.Items))
	}
	if len(nodes) != 3 {
		t.Errorf("pods run on %d nodes (%v), want all 3", len(nodes), nodes)
	}
	redisNodes := map[string]bool{}
	for _, p := range pods.Items {
		if p.Labels["app.kubernetes.io/component"] == "redis" {
			redisNodes[p.Spec.NodeName] = true
		}
	}
	if len(redisNodes) != 3 {
		t.Errorf("the 3 Redis pods share nodes: %v", redisNodes)
	}

	// The postgresql object was accepted by the API with its fields intact
	// (unknown fields would have been pruned).
	pg := &unstructured.Unstructured{}
	pg.SetGroupVersionKind(schema.GroupVersionKind{Group: "acid.zalan.do", Version: "v1", Kind: "postgresql"})
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "jewelry-shop-db"}, pg); err != nil {
		t.Fatalf("get the postgresql object: %v", err)
	}
	for path, want := range map[string]any{"ttl": int64(22), "loop_wait": int64(2), "retry_timeout": int64(10), "synchronous_mode": true} {
		got, ok, _ := unstructured.NestedFieldNoCopy(pg.Object, "spec", "patroni", path)
		if !ok || got != want {
			t.Errorf("postgresql spec.patroni.%s = %v (present %t) after the API server stored it, want %v", path, got, ok, want)
		}
	}

	generations := workloadGenerations(t, env, ns)
	res, err = in.Install(ctx, rel)
	if err != nil {
		t.Fatalf("second install: %v", err)
	}
	if res.Revision != 2 || !res.Upgraded {
		t.Errorf("second install: revision %d upgraded %t, want an upgrade to revision 2", res.Revision, res.Upgraded)
	}
	if again := workloadGenerations(t, env, ns); !mapsEqual(generations, again) {
		t.Errorf("the second install changed workloads: generations %v, then %v", generations, again)
	}

	if err := in.Uninstall(ctx, rel.Name, ns, 2*time.Minute); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	for _, list := range []client.ObjectList{
		&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{},
		&policyv1.PodDisruptionBudgetList{}, &autoscalingv2.HorizontalPodAutoscalerList{}, &networkingv1.IngressList{},
		&corev1.PersistentVolumeClaimList{},
	} {
		if err := env.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": rel.Name}); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(list); n != 0 {
			t.Errorf("%d %T left after uninstall", n, list)
		}
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "jewelry-shop-db"}, pg); !apierrors.IsNotFound(err) {
		t.Errorf("postgresql object after uninstall: %v, want not found", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		err := env.Client.List(ctx, &pods, client.InNamespace(ns))
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Errorf("pods still there a minute after uninstall: %v", err)
	}
}

// TestInstallExplainsUnschedulable: a workload that fits on no node makes
// Install fail after its timeout with the scheduler's reason.
func TestInstallExplainsUnschedulable(t *testing.T) {
	_, in, ns := controlPlaneInstaller(t)
	rel, err := JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	rel = rel.WithValues(map[string]any{
		"redis":      map[string]any{"enabled": false},
		"postgresql": map[string]any{"enabled": false},
		"beat":       map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "64", "memory": "32Mi"}, "limits": map[string]any{"cpu": "64", "memory": "64Mi"}}},
	})
	rel.Namespace = ns
	rel.Timeout = 8 * time.Second
	_, err = in.Install(t.Context(), rel)
	var nre *NotReadyError
	if !errors.As(err, &nre) {
		t.Fatalf("Install = %v, want a *NotReadyError", err)
	}
	t.Logf("the error a user sees:\n%v", err)
	i := slices.IndexFunc(nre.Pods, func(p PodProblem) bool { return strings.HasPrefix(p.Pod, "jewelry-shop-beat-") })
	if i < 0 {
		t.Fatalf("the beat pod is not named as not ready: %+v", nre.Pods)
	}
	if p := nre.Pods[i]; p.Reason != "Unschedulable" || !strings.Contains(p.Detail, "Insufficient cpu") {
		t.Errorf("beat pod problem %+v, want Unschedulable with the scheduler's Insufficient cpu", p)
	}

	// Fixed values converge: the failed release is upgraded.
	rel = rel.WithValues(map[string]any{"beat": map[string]any{"resources": map[string]any{
		"requests": map[string]any{"cpu": "20m"}, "limits": map[string]any{"cpu": "100m"},
	}}})
	rel.Timeout = 2 * time.Minute
	res, err := in.Install(t.Context(), rel)
	if err != nil {
		t.Fatalf("install with fixed values after a failed one: %v", err)
	}
	if res.Revision != 2 || !res.Upgraded {
		t.Errorf("install after a failed one: revision %d upgraded %t, want an upgrade to revision 2", res.Revision, res.Upgraded)
	}
}

// workloadGenerations maps each Deployment and StatefulSet to its
// generation, which changes with every change of its spec.
func workloadGenerations(t *testing.T, env *controlplane.Env, ns string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	var deps appsv1.DeploymentList
	var sts appsv1.StatefulSetList
	if err := env.Client.List(t.Context(), &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(t.Context(), &sts, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		out["Deployment/"+d.Name] = d.Generation
	}
	for _, s := range sts.Items {
		out["StatefulSet/"+s.Name] = s.Generation
	}
	return out
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
