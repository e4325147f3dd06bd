package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Check is one readiness fact of the stack.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Readiness is the state of the installed stack, fact by fact.
type Readiness struct {
	Checks []Check
}

// Ready reports whether every check passed; no checks is not ready.
func (r Readiness) Ready() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Summary says how many checks passed and names the first that did not.
func (r Readiness) Summary() string {
	ok := 0
	var first *Check
	for i, c := range r.Checks {
		if c.OK {
			ok++
		} else if first == nil {
			first = &r.Checks[i]
		}
	}
	if first == nil {
		return fmt.Sprintf("%d/%d ready", ok, len(r.Checks))
	}
	return fmt.Sprintf("%d/%d ready; waiting for %s: %s", ok, len(r.Checks), first.Name, first.Detail)
}

// StackTargets say where the chart's components are.
type StackTargets struct {
	Namespace      string
	PostgresLabels map[string]string // all instances of the PostgreSQL cluster
	PostgresName   string            // the postgresql resource
	RedisLabels    map[string]string // the Redis + Sentinel pods
	SentinelName   string            // the Sentinel container
	MasterName     string            // the name Sentinel monitors
	IngressURL     string            // the shop through the cluster's ingress
	// WithoutOperator accepts a PostgreSQL that the postgres-operator does
	// not manage (no postgresql resource) when its primary Service has a
	// ready endpoint: on a cluster lab did not create, PostgreSQL may be
	// provided otherwise. Its failover is then reported not run.
	WithoutOperator bool
}

// StackProbe checks the stack through the Kubernetes API, the Sentinels
// and the ingress.
type StackProbe struct {
	t    StackTargets
	http *http.Client
	// newExecer makes the Execer that asks the Sentinels; replaced in tests.
	newExecer func(*rest.Config, kubernetes.Interface) Execer
}

// NewStackProbe returns the probe of the stack at t.
func NewStackProbe(t StackTargets) *StackProbe {
	return &StackProbe{
		t:    t,
		http: &http.Client{Timeout: 5 * time.Second},
		newExecer: func(c *rest.Config, k kubernetes.Interface) Execer {
			return PodExecer{Config: c, Kube: k}
		},
	}
}

// Check reads the stack's readiness in the cluster a kubeconfig points at:
// the PostgreSQL cluster runs with a primary
// and its replicas Ready, every Sentinel names the same master, the shop
// answers through the ingress, and the metrics API the HPA needs is
// available.
func (p *StackProbe) Check(ctx context.Context, kubeconfig []byte) (Readiness, error) {
	rc, kube, err := Clients(kubeconfig)
	if err != nil {
		return Readiness{}, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return Readiness{}, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return Readiness{Checks: []Check{
		p.postgres(ctx, kube, dyn),
		p.sentinels(ctx, rc, kube),
		p.web(ctx),
		p.metricsAPI(ctx, kube),
	}}, nil
}

var postgresqlGVR = schema.GroupVersionResource{Group: "acid.zalan.do", Version: "v1", Resource: "postgresqls"}

func (p *StackProbe) postgres(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface) Check {
	c := Check{Name: "PostgreSQL"}
	obj, err := dyn.Resource(postgresqlGVR).Namespace(p.t.Namespace).Get(ctx, p.t.PostgresName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && p.t.WithoutOperator {
		ready, err := serviceEndpoints(ctx, kube, p.t.Namespace, p.t.PostgresName)
		if err != nil {
			c.Detail = fmt.Sprintf("no postgresql %s, and its primary Service: %v", p.t.PostgresName, err)
			return c
		}
		c.OK = len(ready) > 0
		c.Detail = fmt.Sprintf("not the postgres-operator's (no postgresql %s); Service %s has ready endpoints %v", p.t.PostgresName, p.t.PostgresName, ready)
		return c
	}
	if err != nil {
		c.Detail = fmt.Sprintf("postgresql %s: %v", p.t.PostgresName, err)
		return c
	}
	status, _, _ := unstructured.NestedString(obj.Object, "status", "PostgresClusterStatus")
	want, _, _ := unstructured.NestedInt64(obj.Object, "spec", "numberOfInstances")
	pods, err := kube.CoreV1().Pods(p.t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(p.t.PostgresLabels).String()})
	if err != nil {
		c.Detail = fmt.Sprintf("list PostgreSQL pods: %v", err)
		return c
	}
	var primaries, replicas []string
	for _, pod := range pods.Items {
		if !podIsReady(&pod) {
			continue
		}
		switch pod.Labels["spilo-role"] {
		case "master":
			primaries = append(primaries, pod.Name)
		case "replica":
			replicas = append(replicas, pod.Name)
		}
	}
	sort.Strings(replicas)
	c.Detail = fmt.Sprintf("cluster %s, primary %v, %d/%d replicas Ready %v", orNone(status), primaries, len(replicas), max(want-1, 0), replicas)
	c.OK = status == "Running" && len(primaries) == 1 && int64(len(replicas)) >= want-1 && want > 0
	return c
}

func (p *StackProbe) sentinels(ctx context.Context, rc *rest.Config, kube kubernetes.Interface) Check {
	c := Check{Name: "Redis Sentinel"}
	master, answers, err := SentinelAgreement(ctx, p.newExecer(rc, kube), kube, p.t.Namespace, p.t.RedisLabels, p.t.SentinelName, p.t.MasterName)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d Sentinels agree: master %s", answers, master)
	return c
}

func (p *StackProbe) web(ctx context.Context) Check {
	c := Check{Name: "web through the ingress"}
	url := strings.TrimSuffix(p.t.IngressURL, "/") + "/api/products?page=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	start := time.Now()
	resp, err := p.http.Do(req)
	if err != nil {
		c.Detail = fmt.Sprintf("GET %s: %v", url, err)
		return c
	}
	defer resp.Body.Close()
	c.OK = resp.StatusCode == http.StatusOK
	c.Detail = fmt.Sprintf("GET %s: %s in %s", url, resp.Status, time.Since(start).Round(time.Millisecond))
	return c
}

func (p *StackProbe) metricsAPI(ctx context.Context, kube kubernetes.Interface) Check {
	c := Check{Name: "metrics API"}
	const path = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"
	raw, err := kube.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx)
	if err != nil {
		c.Detail = fmt.Sprintf("APIService v1beta1.metrics.k8s.io: %v (the HPA needs metrics-server, which k3s ships)", err)
		return c
	}
	var svc struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string } `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		c.Detail = fmt.Sprintf("read APIService v1beta1.metrics.k8s.io: %v", err)
		return c
	}
	c.Detail = "APIService v1beta1.metrics.k8s.io has no Available condition yet"
	for _, cond := range svc.Status.Conditions {
		if cond.Type == "Available" {
			c.OK = cond.Status == string(corev1.ConditionTrue)
			c.Detail = strings.TrimSpace(fmt.Sprintf("APIService v1beta1.metrics.k8s.io Available=%s %s %s", cond.Status, cond.Reason, cond.Message))
		}
	}
	return c
}

func orNone(s string) string {
	if s == "" {
		return "(no status yet)"
	}
	return s
}

// SentinelAgreement asks every running Sentinel of the selected pods for the
// master and returns it when they all name the same one, with how many
// answered. Disagreement, or a Sentinel that does not answer, is an error.
func SentinelAgreement(ctx context.Context, ex Execer, kube kubernetes.Interface, namespace string, selector map[string]string, container, masterName string) (string, int, error) {
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(selector).String()})
	if err != nil {
		return "", 0, fmt.Errorf("list Redis pods: %w", err)
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	answers := map[string][]string{}
	var problems []string
	n := 0
	for _, pod := range pods.Items {
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			problems = append(problems, pod.Name+" not running")
			continue
		}
		out, err := ex.Exec(ctx, namespace, pod.Name, container, sentinelMasterCmd(masterName))
		addr := strings.TrimSpace(strings.SplitN(strings.TrimSpace(out), "\n", 2)[0])
		if err != nil || addr == "" {
			problems = append(problems, fmt.Sprintf("the sentinel in %s does not answer (%v)", pod.Name, err))
			continue
		}
		n++
		answers[addr] = append(answers[addr], pod.Name)
	}
	switch {
	case len(pods.Items) == 0:
		return "", 0, fmt.Errorf("no Redis pods in %s match %s", namespace, labels.Set(selector))
	case len(problems) > 0:
		return "", n, fmt.Errorf("%s", strings.Join(problems, "; "))
	case len(answers) != 1:
		var parts []string
		for addr, who := range answers {
			parts = append(parts, fmt.Sprintf("%v name %s", who, addr))
		}
		sort.Strings(parts)
		return "", n, fmt.Errorf("the Sentinels disagree: %s", strings.Join(parts, "; "))
	}
	for addr := range answers {
		return addr, n, nil
	}
	return "", n, nil
}

func sentinelMasterCmd(masterName string) []string {
	return []string{"redis-cli", "-p", "26379", "--raw", "sentinel", "get-master-addr-by-name", masterName}
}

// Clients makes a REST config and a clientset from a kubeconfig.
func Clients(kubeconfig []byte) (*rest.Config, kubernetes.Interface, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return rc, kube, nil
}
