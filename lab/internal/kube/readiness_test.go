package kube

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// testStackTargets are the jewelry-shop chart's components, as lab finds them.
func testStackTargets(ingressURL string) StackTargets {
	return StackTargets{
		Namespace:      "jewelry-shop",
		PostgresLabels: map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"},
		PostgresName:   "jewelry-shop-db",
		RedisLabels:    map[string]string{"app.kubernetes.io/instance": "jewelry-shop", "app.kubernetes.io/component": "redis"},
		SentinelName:   "sentinel",
		MasterName:     "mymaster",
		IngressURL:     ingressURL,
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
	targets := testStackTargets(ingress.URL)
	targets.Namespace = ns
	probe := NewStackProbe(targets)
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

// TestPostgresWithoutOperator: on a cluster where no postgresql resource
// names the chart's PostgreSQL, the readiness of a foreign cluster accepts
// the primary Service when it has a ready endpoint (lab's own never does),
// and PostgresWithoutOperator says where the Service leads; with the
// resource it says nothing.
func TestPostgresWithoutOperator(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	dyn := dynamic.NewForConfigOrDie(env.Config)
	ns := env.Namespace(t)
	ctx := t.Context()
	targets := testStackTargets("http://127.0.0.1:1")
	targets.Namespace = ns

	why, err := PostgresWithoutOperator(ctx, dyn, kube, ns, "jewelry-shop-db")
	if err != nil || !strings.Contains(why, "and so is the Service") {
		t.Errorf("no resource, no Service: %q, %v", why, err)
	}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "jewelry-shop-db"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port, ready := int32(5432), true
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "jewelry-shop-db-x", Labels: map[string]string{"kubernetes.io/service-name": "jewelry-shop-db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	why, err = PostgresWithoutOperator(ctx, dyn, kube, ns, "jewelry-shop-db")
	if err != nil || !strings.Contains(why, "not the operator's") || !strings.Contains(why, "198.18.0.1:5432") {
		t.Errorf("no resource, a Service: %q, %v", why, err)
	}
	for _, foreign := range []bool{false, true} {
		targets.WithoutOperator = foreign
		c := NewStackProbe(targets).postgres(ctx, kube, dyn)
		if c.OK != foreign {
			t.Errorf("WithoutOperator=%t: the PostgreSQL check is %+v", foreign, c)
		}
	}

	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "acid.zalan.do/v1", "kind": "postgresql",
		"metadata": map[string]any{"name": "jewelry-shop-db", "namespace": ns},
		"spec":     map[string]any{"teamId": "jewelry", "numberOfInstances": int64(3), "postgresql": map[string]any{"version": "17"}, "volume": map[string]any{"size": "1Gi"}},
	}}
	if _, err := dyn.Resource(postgresqlGVR).Namespace(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if why, err := PostgresWithoutOperator(ctx, dyn, kube, ns, "jewelry-shop-db"); why != "" || err != nil {
		t.Errorf("with the resource: %q, %v; want nothing", why, err)
	}
}
