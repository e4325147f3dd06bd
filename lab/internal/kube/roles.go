package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/jewelry-shop/lab/chaosmesh"
)

// PostgresPrimary returns the pod the postgres-operator labels as primary
// (spilo-role=master) among the pods that selector picks. Exactly one must
// be; during a failover there may be none for a while, which is an error here.
func PostgresPrimary(ctx context.Context, kube kubernetes.Interface, namespace string, selector map[string]string) (string, error) {
	sel := labels.Merge(selector, labels.Set{"spilo-role": "master"})
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", fmt.Errorf("find the PostgreSQL primary: %w", err)
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	switch len(names) {
	case 1:
		return names[0], nil
	case 0:
		return "", fmt.Errorf("find the PostgreSQL primary: no pod in %s is labelled %s", namespace, sel)
	default:
		return "", fmt.Errorf("find the PostgreSQL primary: %d pods are labelled %s: %v", len(names), sel, names)
	}
}

// Execer runs a command in a container and returns its standard output.
type Execer interface {
	Exec(ctx context.Context, namespace, pod, container string, cmd []string) (string, error)
}

// RedisMaster asks the Sentinels which Redis is the master, instead of
// guessing from pod names (after a failover any pod may be). It tries the
// selected pods' sentinel containers in turn and maps the address the first
// one answers (host name or IP) to a pod.
func RedisMaster(ctx context.Context, ex Execer, kube kubernetes.Interface, namespace string, selector map[string]string, container, masterName string) (pod, addr string, err error) {
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(selector).String()})
	if err != nil {
		return "", "", fmt.Errorf("list Redis pods: %w", err)
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	var errs []error
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		out, err := ex.Exec(ctx, namespace, p.Name, container, sentinelMasterCmd(masterName))
		if err != nil {
			errs = append(errs, fmt.Errorf("ask the sentinel in %s: %w", p.Name, err))
			continue
		}
		addr = strings.TrimSpace(strings.SplitN(strings.TrimSpace(out), "\n", 2)[0])
		if addr == "" {
			errs = append(errs, fmt.Errorf("the sentinel in %s knows no master %q", p.Name, masterName))
			continue
		}
		if pod, ok := podForAddress(pods.Items, addr); ok {
			return pod, addr, nil
		}
		return "", addr, fmt.Errorf("the Sentinels name %s as master of %q, which is none of the pods %v", addr, masterName, podNames(pods.Items))
	}
	if len(errs) == 0 {
		return "", "", fmt.Errorf("ask Sentinel for the Redis master: no running pod in %s matches %s", namespace, labels.Set(selector))
	}
	return "", "", errors.Join(errs...)
}

// podForAddress finds the pod an address names: its IP, its name, or a DNS
// name whose first label is the pod's name (<pod>.<headless service>.<ns>.svc…).
func podForAddress(pods []corev1.Pod, addr string) (string, bool) {
	host, _, _ := strings.Cut(addr, ".")
	for _, p := range pods {
		if addr == p.Status.PodIP || addr == p.Name || (host == p.Name && strings.Contains(addr, ".")) {
			return p.Name, true
		}
	}
	return "", false
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// PodExecer runs commands in containers through the API server's exec
// subresource, as kubectl exec does.
type PodExecer struct {
	Config *rest.Config
	Kube   kubernetes.Interface
}

// Exec implements Execer.
func (e PodExecer) Exec(ctx context.Context, namespace, pod, container string, cmd []string) (string, error) {
	req := e.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(e.Config, "POST", req.URL())
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", namespace, pod, err)
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return "", fmt.Errorf("exec %v in %s/%s: %w (%s)", cmd, namespace, pod, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Leaders names the leader an experiment targets: the PostgreSQL primary
// from the operator's role labels, the Redis master from the Sentinels.
type Leaders struct {
	Exec      Execer
	Kube      kubernetes.Interface
	Namespace string
	Postgres  map[string]string // the PostgreSQL cluster's pods
	Redis     map[string]string // the Redis and Sentinel pods
}

// Leader names the current leader the experiment targets; "" for an
// experiment without one.
func (s Leaders) Leader(ctx context.Context, experiment string) (string, error) {
	switch experiment {
	case chaosmesh.PostgresPrimaryFailure, chaosmesh.PostgresPrimaryIsolation:
		return PostgresPrimary(ctx, s.Kube, s.Namespace, s.Postgres)
	case chaosmesh.RedisMasterFailure:
		pod, _, err := RedisMaster(ctx, s.Exec, s.Kube, s.Namespace, s.Redis, "sentinel", "mymaster")
		return pod, err
	}
	return "", nil
}
