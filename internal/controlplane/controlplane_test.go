package controlplane_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/modfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// TestAssetsScriptAgrees checks that hack/test-assets.sh builds into the
// directory the helper looks in.
func TestAssetsScriptAgrees(t *testing.T) {
	script, err := os.ReadFile("../../hack/test-assets.sh")
	if err != nil {
		t.Fatalf("read the script: %v", err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+_VERSION)=(\S+)$`).FindAllSubmatch(script, -1) {
		vars[string(m[1])] = string(m[2])
	}
	key := regexp.MustCompile(`(?m)^key="(.*)"$`).FindSubmatch(script)
	if key == nil {
		t.Fatal("no key= line in hack/test-assets.sh")
	}
	scriptKey := os.Expand(string(key[1]), func(v string) string { return vars[v] })

	cache := t.TempDir()
	t.Setenv("LAB_CACHE_DIR", cache)
	got, err := controlplane.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cache+"/test-assets/"+scriptKey, got); diff != "" {
		t.Errorf("asset directory differs from hack/test-assets.sh's (-script +helper):\n%s", diff)
	}

	// Each tools module requires the version the script names in the key.
	for _, m := range []struct{ gomod, module, version string }{
		{"../../hack/tools/go.mod", "k8s.io/kubernetes", "KUBERNETES_VERSION"},
		{"../../hack/tools/go.mod", "go.etcd.io/etcd/server/v3", "ETCD_VERSION"},
		{"../../hack/tools/go.mod", "sigs.k8s.io/kwok", "KWOK_VERSION"},
		{"../../hack/tools/go.mod", "sigs.k8s.io/controller-tools", "CONTROLLER_TOOLS_VERSION"},
		{"../../hack/coredns/go.mod", "github.com/coredns/coredns", "COREDNS_VERSION"},
		{"../../hack/metrics-server/go.mod", "sigs.k8s.io/metrics-server", "METRICS_SERVER_VERSION"},
		{"../../hack/local-path-provisioner/go.mod", "github.com/rancher/local-path-provisioner", "LOCAL_PATH_PROVISIONER_VERSION"},
	} {
		gomod, err := os.ReadFile(m.gomod)
		if err != nil {
			t.Fatalf("read %s: %v", m.gomod, err)
		}
		want := m.module + " " + vars[m.version]
		if !regexp.MustCompile(`(?m)^\s*(require\s+)?` + regexp.QuoteMeta(want) + `(\s|$)`).Match(gomod) {
			t.Errorf("%s does not require %s (%s in hack/test-assets.sh)", m.gomod, want, m.version)
		}
	}
}

// TestToolsModuleSharesVersions: every module that hack/tools and the main
// module both use is at one version in both. The control plane is built
// first (hack/test-assets.sh) with the flags of every other non-race build,
// so the packages the stand-in images and the test binaries share with it
// (client-go, the Kubernetes API types, x/net, protobuf, ...) come from the
// build cache; one module at another version compiles its importers, most of
// the tree, again: minutes on a cold cache. The fix is `go get` of the newer
// version in the other module.
func TestToolsModuleSharesVersions(t *testing.T) {
	lab, tools := readModFile(t, "../../go.mod"), readModFile(t, "../../hack/tools/go.mod")
	for path, v := range lab {
		if tv, ok := tools[path]; ok && tv != v {
			t.Errorf("%s is %s in go.mod but %s in hack/tools/go.mod: go get %s@<the newer> in the module with the older", path, v, tv, path)
		}
	}
}

// readModFile returns the version of every module a go.mod requires, the
// replacement's where a replace directive names one.
func readModFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	versions := map[string]string{}
	for _, r := range f.Require {
		versions[r.Mod.Path] = r.Mod.Version
	}
	for _, r := range f.Replace {
		if _, ok := versions[r.Old.Path]; ok && r.New.Version != "" {
			versions[r.Old.Path] = r.New.Version
		}
	}
	return versions
}

func TestAssetsDir(t *testing.T) {
	tests := []struct {
		name          string
		labCache, xdg string
		home          string
		wantPrefix    string
	}{
		{"LAB_CACHE_DIR wins", "/c/lab", "/x", "/h", "/c/lab/test-assets/"},
		{"XDG_CACHE_HOME next", "", "/x", "/h", "/x/lab/test-assets/"},
		{"HOME last", "", "", "/h", "/h/.cache/lab/test-assets/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LAB_CACHE_DIR", tt.labCache)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := controlplane.AssetsDir()
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.wantPrefix + "k8s-v1.37.2-etcd-v3.7.0-kwok-v0.8.0-cg-v0.23.0-coredns-v1.15.0-ms-v0.8.0-lpp-v0.0.30"; got != want {
				t.Errorf("AssetsDir() = %q, want %q", got, want)
			}
		})
	}
}

// TestDeployment checks that a Deployment's pods are scheduled over the
// simulated nodes, become Running, and that a deleted pod is replaced.
func TestDeployment(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ctx := t.Context()
	ns := env.Namespace(t)

	dep := deployment(ns, "web", 3, nil)
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	pods := waitRunning(t, env, ns, "web", 3, time.Minute)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
	}
	if len(nodes) < 2 {
		t.Errorf("3 pods ran on %d node(s) %v, want them spread over at least 2", len(nodes), nodes)
	}

	victim := pods[0]
	begin := time.Now()
	if err := env.Client.Delete(ctx, &victim); err != nil {
		t.Fatalf("delete pod %s: %v", victim.Name, err)
	}
	replaced := waitRunning(t, env, ns, "web", 3, time.Minute)
	for _, p := range replaced {
		if p.Name == victim.Name {
			t.Errorf("deleted pod %s still counted among the running pods", victim.Name)
		}
	}
	t.Logf("deleted pod %s replaced by a Running pod in %v", victim.Name, time.Since(begin).Round(time.Millisecond))
}

// TestNodeFailure stops the node that runs a pod and measures how long the
// pod takes to be evicted and Running on another node.
func TestNodeFailure(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ctx := t.Context()
	ns := env.Namespace(t)

	const toleration = 2 // seconds a pod stays on a node that stopped
	tolerations := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](toleration)},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](toleration)},
	}
	if err := env.Client.Create(ctx, deployment(ns, "single", 1, tolerations)); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	pod := waitRunning(t, env, ns, "single", 1, time.Minute)[0]
	node := pod.Spec.NodeName

	stopped := time.Now()
	if err := env.StopNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := env.StartNode(cctx, node); err != nil {
			t.Errorf("start node %s again: %v", node, err)
		}
	})
	if err := env.WaitNodeReady(ctx, node, false, time.Minute); err != nil {
		t.Fatal(err)
	}
	notReady := time.Since(stopped)

	var moved corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(_ context.Context) (bool, error) {
		for _, p := range listPods(t, env, ns, "single") {
			if p.Spec.NodeName != node && running(p) {
				moved = p
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no pod Running on another node than the stopped %s: %v", node, err)
	}
	t.Logf("node %s stopped: NotReady after %v; pod evicted and Running on %s after %v (toleration %d s)",
		node, notReady.Round(time.Millisecond), moved.Spec.NodeName, time.Since(stopped).Round(time.Millisecond), toleration)

	var old corev1.Pod
	err = env.Client.Get(ctx, client.ObjectKeyFromObject(&pod), &old)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		t.Fatalf("get the evicted pod: %v", err)
	case old.DeletionTimestamp == nil:
		t.Errorf("pod %s on the stopped node was not evicted", pod.Name)
	}
}

// TestChaosMeshCRDs checks that the API validates Chaos Mesh objects with the
// generated CRDs' schema.
func TestChaosMeshCRDs(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	tests := []struct {
		name    string
		action  chaosv1alpha1.PodChaosAction
		mode    chaosv1alpha1.SelectorMode
		wantErr bool
	}{
		{"valid pod-kill", chaosv1alpha1.PodKillAction, chaosv1alpha1.OneMode, false},
		{"invalid action", "explode", chaosv1alpha1.OneMode, true},
		{"invalid mode", chaosv1alpha1.PodFailureAction, "some", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := &chaosv1alpha1.PodChaos{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pc-%d", i), Namespace: ns},
				Spec: chaosv1alpha1.PodChaosSpec{
					Action: tt.action,
					ContainerSelector: chaosv1alpha1.ContainerSelector{PodSelector: chaosv1alpha1.PodSelector{
						Selector: chaosv1alpha1.PodSelectorSpec{GenericSelectorSpec: chaosv1alpha1.GenericSelectorSpec{Namespaces: []string{ns}}},
						Mode:     tt.mode,
					}},
				},
			}
			err := env.Client.Create(t.Context(), pc)
			if tt.wantErr != (err != nil) {
				t.Fatalf("create PodChaos: error %v, want error: %t", err, tt.wantErr)
			}
			if err != nil && !apierrors.IsInvalid(err) {
				t.Errorf("create PodChaos: %v, want an Invalid error", err)
			}
		})
	}
}

// TestPostgresqlCRD checks the hand-written Zalando postgresql CRD against
// the API: what the chart sets is accepted, what the operator requires is
// enforced.
func TestPostgresqlCRD(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	valid := func() map[string]any {
		return map[string]any{
			"teamId":            "shop",
			"numberOfInstances": int64(3),
			"postgresql":        map[string]any{"version": "17", "parameters": map[string]any{"max_connections": "200"}},
			"volume":            map[string]any{"size": "1Gi", "storageClass": "local-path"},
			"users":             map[string]any{"shop": []any{"superuser", "createdb"}},
			"databases":         map[string]any{"shop": "shop"},
			"patroni": map[string]any{
				"ttl": int64(20), "loop_wait": int64(5), "retry_timeout": int64(5),
				"synchronous_mode": true, "synchronous_node_count": int64(1),
			},
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "100m", "memory": "256Mi"},
				"limits":   map[string]any{"cpu": "1", "memory": "1Gi"},
			},
		}
	}
	tests := []struct {
		name    string
		mutate  func(spec map[string]any)
		wantErr bool
	}{
		{"chart values", func(map[string]any) {}, false},
		{"no teamId", func(s map[string]any) { delete(s, "teamId") }, true},
		{"no volume size", func(s map[string]any) { s["volume"] = map[string]any{} }, true},
		{"unknown version", func(s map[string]any) { s["postgresql"] = map[string]any{"version": "9.6"} }, true},
		{"bad memory", func(s map[string]any) {
			s["resources"] = map[string]any{"requests": map[string]any{"memory": "lots"}}
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := valid()
			tt.mutate(spec)
			pg := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "acid.zalan.do/v1",
				"kind":       "postgresql",
				"metadata":   map[string]any{"name": fmt.Sprintf("shop-db-%d", i), "namespace": ns},
				"spec":       spec,
			}}
			err := env.Client.Create(t.Context(), pg)
			if tt.wantErr != (err != nil) {
				t.Fatalf("create postgresql: error %v, want error: %t", err, tt.wantErr)
			}
		})
	}
}

// deployment returns a Deployment of replicas pods labelled app=name.
func deployment(ns, name string, replicas int32, tolerations []corev1.Toleration) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// Nothing is pulled: kwok only simulates the container.
					Containers:  []corev1.Container{{Name: "app", Image: "registry.invalid/" + name + ":test"}},
					Tolerations: tolerations,
					// Spread like the real scheduler would on an idle cluster,
					// so that the test does not depend on scoring ties.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
}

// listPods returns the pods labelled app=app in ns.
func listPods(t *testing.T, env *controlplane.Env, ns, app string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := env.Client.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return pods.Items
}

// running reports whether a pod runs and is not being deleted.
func running(p corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != ""
}

// waitRunning waits until exactly n pods labelled app=app are Running, and
// returns them.
func waitRunning(t *testing.T, env *controlplane.Env, ns, app string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var got []corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		got = got[:0]
		for _, p := range listPods(t, env, ns, app) {
			if running(p) {
				got = append(got, p)
			}
		}
		return len(got) == n, nil
	})
	if err != nil {
		t.Fatalf("wait for %d Running pods of %s (have %d): %v", n, app, len(got), err)
	}
	return got
}
