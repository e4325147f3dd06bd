package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/lab/judge"
)

// Metrics reads the pods' usage from metrics.k8s.io through the API
// server, which k3s' metrics-server serves, and their limits from the pods.
type Metrics struct{ Kube kubernetes.Interface }

// Usage reads the current usage of each pod a selector picks, with the
// pod's limits, and their sums.
func (m Metrics) Usage(ctx context.Context, namespace string, selector map[string]string) (judge.Usage, error) {
	sel := labels.Set(selector).String()
	raw, err := m.Kube.Discovery().RESTClient().Get().
		AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", namespace, "pods").
		Param("labelSelector", sel).DoRaw(ctx)
	if err != nil {
		return judge.Usage{}, fmt.Errorf("read pod metrics: %w", err)
	}
	pods, err := m.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return judge.Usage{}, fmt.Errorf("read the limits of the pods: %w", err)
	}
	return podUsage(raw, pods.Items)
}

// podUsage reads a metrics.k8s.io PodMetricsList, per pod, with each pod's
// limits from pods (zero when a container has none, or the pod is not
// among them).
func podUsage(raw []byte, pods []corev1.Pod) (judge.Usage, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Containers []struct {
				Usage map[string]string `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return judge.Usage{}, fmt.Errorf("decode pod metrics: %w", err)
	}
	limits := map[string]judge.PodUsage{}
	for _, p := range pods {
		var l judge.PodUsage
		cpuSet, memSet := true, true
		for _, c := range p.Spec.Containers {
			cpu, hasCPU := c.Resources.Limits[corev1.ResourceCPU]
			mem, hasMem := c.Resources.Limits[corev1.ResourceMemory]
			cpuSet, memSet = cpuSet && hasCPU, memSet && hasMem
			l.CPULimitMilli += cpu.MilliValue()
			l.MemoryLimitBytes += mem.Value()
		}
		if !cpuSet {
			l.CPULimitMilli = 0
		}
		if !memSet {
			l.MemoryLimitBytes = 0
		}
		limits[p.Name] = l
	}
	var u judge.Usage
	for _, item := range list.Items {
		pu := limits[item.Metadata.Name]
		pu.Pod = item.Metadata.Name
		for _, c := range item.Containers {
			if q, err := resource.ParseQuantity(c.Usage["cpu"]); err == nil {
				pu.CPUMilli += q.MilliValue()
			}
			if q, err := resource.ParseQuantity(c.Usage["memory"]); err == nil {
				pu.MemoryBytes += q.Value()
			}
		}
		u.Pods++
		u.CPUMilli += pu.CPUMilli
		u.MemoryBytes += pu.MemoryBytes
		u.PerPod = append(u.PerPod, pu)
	}
	sort.Slice(u.PerPod, func(i, j int) bool { return u.PerPod[i].Pod < u.PerPod[j].Pod })
	return u, nil
}
