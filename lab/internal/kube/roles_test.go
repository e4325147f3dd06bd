package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// makePod creates a pod in the real API with the given labels and, when ip is
// set, a Running status with that IP.
func makePod(t *testing.T, kube kubernetes.Interface, ns, name, ip string, labels map[string]string) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:5999/x:1"}},
			// No node matches: neither the scheduler nor kwok (when another
			// test started them) touches the pod, so its status is the test's.
			NodeSelector: map[string]string{"lab.jewelry-shop.dev/test": "unschedulable"},
		},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ip == "" {
		return
	}
	setPodStatus(t, kube, ns, name, func(s *corev1.PodStatus) { s.Phase, s.PodIP = corev1.PodRunning, ip })
}

// setPodStatus changes a pod's status, retrying when the scheduler or a
// controller of the shared control plane changed the pod in between.
func setPodStatus(t *testing.T, kube kubernetes.Interface, ns, name string, change func(*corev1.PodStatus)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := kube.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(&p.Status)
		_, err = kube.CoreV1().Pods(ns).UpdateStatus(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPostgresPrimary(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ns := env.Namespace(t)
	sel := map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"}
	if _, err := PostgresPrimary(t.Context(), kube, ns, sel); err == nil || !strings.Contains(err.Error(), "no pod") {
		t.Errorf("with no primary: %v", err)
	}
	makePod(t, kube, ns, "jewelry-shop-db-0", "", map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db", "spilo-role": "replica"})
	makePod(t, kube, ns, "jewelry-shop-db-1", "", map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db", "spilo-role": "master"})
	makePod(t, kube, ns, "other-db-0", "", map[string]string{"application": "spilo", "cluster-name": "other-db", "spilo-role": "master"})
	got, err := PostgresPrimary(t.Context(), kube, ns, sel)
	if err != nil || got != "jewelry-shop-db-1" {
		t.Errorf("PostgresPrimary = %q, %v; want jewelry-shop-db-1", got, err)
	}
}

// sentinelAnswers is an Execer whose sentinels answer per pod.
type sentinelAnswers map[string]string

func (s sentinelAnswers) Exec(_ context.Context, _, pod, container string, cmd []string) (string, error) {
	if container != "sentinel" || strings.Join(cmd[len(cmd)-2:], " ") != "get-master-addr-by-name mymaster" {
		return "", errors.New("unexpected command")
	}
	a, ok := s[pod]
	if !ok {
		return "", errors.New("connection refused")
	}
	return a, nil
}

func TestRedisMaster(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ns := env.Namespace(t)
	sel := map[string]string{"app.kubernetes.io/component": "redis"}
	for i, ip := range []string{"10.42.0.10", "10.42.1.11", "10.42.2.12"} {
		makePod(t, kube, ns, "jewelry-shop-redis-"+string(rune('0'+i)), ip, sel)
	}
	fqdn := "jewelry-shop-redis-2.jewelry-shop-redis-headless." + ns + ".svc.cluster.local"
	tests := []struct {
		name    string
		answers sentinelAnswers
		want    string
		wantErr string
	}{
		{"host name answer, first sentinel down", sentinelAnswers{"jewelry-shop-redis-1": fqdn + "\n6379\n"}, "jewelry-shop-redis-2", ""},
		{"IP answer", sentinelAnswers{"jewelry-shop-redis-0": "10.42.1.11\n6379\n"}, "jewelry-shop-redis-1", ""},
		{"unknown master", sentinelAnswers{"jewelry-shop-redis-0": "10.9.9.9\n6379\n"}, "", "none of the pods"},
		{"no sentinel answers", sentinelAnswers{}, "", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, _, err := RedisMaster(t.Context(), tt.answers, kube, ns, sel, "sentinel", "mymaster")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RedisMaster = %q, %v; want an error containing %q", pod, err, tt.wantErr)
				}
				return
			}
			if err != nil || pod != tt.want {
				t.Fatalf("RedisMaster = %q, %v; want %s", pod, err, tt.want)
			}
		})
	}
}
