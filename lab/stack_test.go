package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/internal/controlplane"
)

// writeShopArchive writes a small image archive tagged like `make image`'s.
func writeShopArchive(t *testing.T, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shop.tar")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	return path
}

type fakeImages struct {
	local    map[string]bool
	imported []string
}

func (f *fakeImages) LocalImages(_ context.Context, images []string) ([]string, error) {
	var out []string
	for _, i := range images {
		if f.local[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

func (f *fakeImages) ImportImages(_ context.Context, _ string, images []string) error {
	f.imported = append(f.imported, images...)
	return nil
}

type fakeInstaller struct {
	installed []string
	failOn    string
}

func (f *fakeInstaller) Install(_ context.Context, rel charts.Release) (*charts.Result, error) {
	if rel.Name == f.failOn {
		return nil, errors.New("pod x not ready: ImagePullBackOff")
	}
	f.installed = append(f.installed, fmt.Sprintf("%s/%s", rel.Namespace, rel.Name))
	return &charts.Result{Release: rel.Name, Namespace: rel.Namespace, Chart: rel.Chart.Name}, nil
}

func (f *fakeInstaller) Images(context.Context, []charts.Release) ([]string, error) {
	return []string{"ghcr.io/chaos-mesh/chaos-mesh:v2.8.3", "redis:8.2.1", "jewelry-shop/shop:1.2.3"}, nil
}

// fakeCharts is where the charts come from: err fails every fetch.
type fakeCharts struct {
	err     error
	fetched []string
}

func (f *fakeCharts) Fetch(_ context.Context, releases []charts.Release) error {
	for _, r := range releases {
		f.fetched = append(f.fetched, r.Chart.Name)
	}
	return f.err
}

// readyAfter reports the stack not ready for n checks, then ready.
type readyAfter struct{ n, calls int }

func (r *readyAfter) Check(context.Context, []byte) (Readiness, error) {
	r.calls++
	ok := r.calls > r.n
	return Readiness{Checks: []Check{{Name: "PostgreSQL", OK: ok, Detail: "primary x"}, {Name: "metrics API", OK: true}}}, nil
}

func TestUpInstallsStack(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Stack.Install = true
	cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
	imgs := &fakeImages{local: map[string]bool{"redis:8.2.1": true}}
	inst := &fakeInstaller{}
	probe := &readyAfter{n: 0}
	rec := &recorder{}
	l := New(cfg, WithClusters(&fakeClusters{}), WithNodes(&fakeNodes{nodes: readyNodes()}), WithProgress(rec),
		WithImages(imgs), WithStackProbe(probe), WithCharts(&fakeCharts{}), WithInstaller(func([]byte) (StackInstaller, error) { return inst, nil }))
	l.listen = func(context.Context, string) error { return nil }
	res, err := l.Up(context.Background(), UpOptions{})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if diff := cmp.Diff([]string{"postgres-operator/postgres-operator", "chaos-mesh/chaos-mesh", "jewelry-shop/jewelry-shop"}, inst.installed); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{cfg.Stack.ShopImageArchive, "redis:8.2.1"}, imgs.imported); diff != "" {
		t.Errorf("imported (-want +got):\n%s", diff)
	}
	if res.Stack == nil || res.Stack.ShopImage != "jewelry-shop/shop:1.2.3" || !res.Stack.Readiness.Ready() {
		t.Errorf("stack result %+v", res.Stack)
	}
	if !strings.Contains(strings.Join(rec.steps, "\n"), "Waiting for the stack to be ready: ok") {
		t.Errorf("steps %v", rec.steps)
	}
}

// TestUpStackFailures: what the stack needs from this machine is checked
// before anything is created; a later failure removes the cluster, or keeps
// it when asked.
func TestUpStackFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		archive   bool
		chartsErr error
		failOn    string
		keep      bool
		want      string
		created   bool
		deleted   bool
	}{
		{"no shop image", false, nil, "", false, "make image", false, false},
		{"charts unavailable", true, &charts.ChartUnavailableError{Chart: charts.ChaosMesh().Chart, Err: errors.New("no route to host")}, "", false, "no route to host", false, false},
		{"release not ready", true, nil, "chaos-mesh", false, "ImagePullBackOff", true, true},
		{"kept on failure", true, nil, "jewelry-shop", true, "ImagePullBackOff", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Stack.Install = true
			cfg.Stack.ShopImageArchive = filepath.Join(t.TempDir(), "missing.tar")
			if tt.archive {
				cfg.Stack.ShopImageArchive = writeShopArchive(t, "jewelry-shop/shop:1.2.3")
			}
			fc := &fakeClusters{}
			l := New(cfg, WithClusters(fc), WithNodes(&fakeNodes{nodes: readyNodes()}), WithImages(&fakeImages{}), WithCharts(&fakeCharts{err: tt.chartsErr}),
				WithStackProbe(&readyAfter{}), WithInstaller(func([]byte) (StackInstaller, error) { return &fakeInstaller{failOn: tt.failOn}, nil }))
			l.listen = func(context.Context, string) error { return nil }
			_, err := l.Up(context.Background(), UpOptions{KeepOnFailure: tt.keep})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Up = %v, want an error containing %q", err, tt.want)
			}
			calls := strings.Join(fc.calls, ",")
			if created := strings.Contains(calls, "Create"); created != tt.created {
				t.Errorf("cluster created = %v, want %v (calls %v)", created, tt.created, fc.calls)
			}
			if deleted := strings.Contains(calls, "Delete"); deleted != tt.deleted {
				t.Errorf("cluster deleted = %v, want %v (calls %v)", deleted, tt.deleted, fc.calls)
			}
		})
	}
}

func TestWaitStackReadyNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	l := New(testConfig(t), WithClusters(&fakeClusters{}), WithNodes(&fakeNodes{}), WithStackProbe(&readyAfter{n: 1000}))
	_, err := l.waitStackReady(context.Background(), nil, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL: primary x") || !strings.Contains(err.Error(), "lab status") {
		t.Fatalf("waitStackReady = %v", err)
	}
}

func TestArchiveTag(t *testing.T) {
	t.Parallel()
	ref, err := cluster.ArchiveRef(writeShopArchive(t, "jewelry-shop/shop:v9"))
	if err != nil || ref != "jewelry-shop/shop:v9" || imageTag(ref) != "v9" {
		t.Fatalf("ArchiveRef = %q, %v; tag %q", ref, err, imageTag(ref))
	}
	if got := imageTag("127.0.0.1:5000/shop"); got != "" {
		t.Errorf("imageTag of an untagged reference with a port = %q", got)
	}
}

// TestKubeProbe checks the readiness facts against objects in the real API
// server: a Running postgresql with a Ready primary and replicas, Sentinels
// that agree, the shop answering through a stand-in ingress, and the
// metrics APIService available.
func TestKubeProbe(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ns := env.Namespace(t)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/products" {
			_, _ = w.Write([]byte(`{"products":[]}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer ingress.Close()
	targets := defaultStackTargets(ingress.URL)
	targets.Namespace = ns
	probe := newKubeProbe(targets)
	answers := sentinelAnswers{}
	probe.newExecer = func(*rest.Config, kubernetes.Interface) Execer { return answers }
	kubeconfig := kubeconfigOf(t, env)

	byName := func(rd Readiness) map[string]Check {
		m := map[string]Check{}
		for _, c := range rd.Checks {
			m[c.Name] = c
		}
		return m
	}
	rd, err := probe.Check(t.Context(), kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Ready() || byName(rd)["web through the ingress"].OK != true {
		t.Errorf("empty namespace: %+v", rd)
	}

	// PostgreSQL: the resource Running with a Ready primary and 2 replicas.
	dyn := dynamic.NewForConfigOrDie(env.Config)
	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "acid.zalan.do/v1", "kind": "postgresql",
		"metadata": map[string]any{"name": "jewelry-shop-db", "namespace": ns},
		"spec":     map[string]any{"teamId": "jewelry", "numberOfInstances": int64(3), "postgresql": map[string]any{"version": "17"}, "volume": map[string]any{"size": "1Gi"}},
	}}
	created, err := dyn.Resource(postgresqlGVR).Namespace(ns).Create(t.Context(), pg, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create postgresql: %v", err)
	}
	_ = unstructured.SetNestedField(created.Object, "Running", "status", "PostgresClusterStatus")
	if _, err := dyn.Resource(postgresqlGVR).Namespace(ns).UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		if _, err := dyn.Resource(postgresqlGVR).Namespace(ns).Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("set postgresql status: %v", err)
		}
	}
	for i, role := range []string{"master", "replica", "replica"} {
		lbl := map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db", "spilo-role": role}
		makeReadyPod(t, kube, ns, fmt.Sprintf("jewelry-shop-db-%d", i), fmt.Sprintf("10.42.0.%d", i+20), lbl)
	}
	// Redis: three pods whose Sentinels name the same master.
	fqdn := "jewelry-shop-redis-0.jewelry-shop-redis-headless." + ns + ".svc.cluster.local"
	for i := range 3 {
		pod := fmt.Sprintf("jewelry-shop-redis-%d", i)
		makeReadyPod(t, kube, ns, pod, fmt.Sprintf("10.42.1.%d", i+10), targets.RedisLabels)
		answers[pod] = fqdn + "\n6379\n"
	}
	// The metrics API, as metrics-server registers it.
	apisvc := fmt.Appendf(nil, `{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.metrics.k8s.io"},"spec":{"group":"metrics.k8s.io","version":"v1beta1","groupPriorityMinimum":100,"versionPriority":100,"insecureSkipTLSVerify":true,"service":{"namespace":"kube-system","name":"metrics-server"}}}`)
	if err := kube.Discovery().RESTClient().Post().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").Body(apisvc).Do(t.Context()).Error(); err != nil {
		t.Fatalf("create APIService: %v", err)
	}

	rd, err = probe.Check(t.Context(), kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(rd)
	for _, name := range []string{"PostgreSQL", "Redis Sentinel", "web through the ingress"} {
		if !got[name].OK {
			t.Errorf("%s not ready: %s", name, got[name].Detail)
		}
	}
	// No metrics-server runs here: the APIService exists but is not
	// Available, and the check must say so rather than pass.
	if m := got["metrics API"]; m.OK || !strings.Contains(m.Detail, "v1beta1.metrics.k8s.io") {
		t.Errorf("metrics API check = %+v", m)
	}
	t.Logf("readiness: %s", rd.Summary())

	answers["jewelry-shop-redis-2"] = "10.9.9.9\n6379\n"
	rd, _ = probe.Check(t.Context(), kubeconfig)
	if c := byName(rd)["Redis Sentinel"]; c.OK || !strings.Contains(c.Detail, "disagree") {
		t.Errorf("disagreeing Sentinels: %+v", c)
	}
}

func makeReadyPod(t *testing.T, kube kubernetes.Interface, ns, name, ip string, labels map[string]string) {
	t.Helper()
	makePod(t, kube, ns, name, ip, labels)
	setPodStatus(t, kube, ns, name, func(s *corev1.PodStatus) {
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	})
}

func kubeconfigOf(t *testing.T, env *controlplane.Env) []byte {
	t.Helper()
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
