package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/lab/judge"
)

// Metrics reads the pods' usage from metrics.k8s.io through the API
// server, which k3s' metrics-server serves.
type Metrics struct{ Kube kubernetes.Interface }

// Usage sums the current usage of the pods a selector picks.
func (m Metrics) Usage(ctx context.Context, namespace string, selector map[string]string) (judge.Usage, error) {
	raw, err := m.Kube.Discovery().RESTClient().Get().
		AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", namespace, "pods").
		Param("labelSelector", labels.Set(selector).String()).DoRaw(ctx)
	if err != nil {
		return judge.Usage{}, fmt.Errorf("read pod metrics: %w", err)
	}
	return parsePodMetrics(raw)
}

// parsePodMetrics sums a metrics.k8s.io PodMetricsList.
func parsePodMetrics(raw []byte) (judge.Usage, error) {
	var list struct {
		Items []struct {
			Containers []struct {
				Usage map[string]string `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return judge.Usage{}, fmt.Errorf("decode pod metrics: %w", err)
	}
	var u judge.Usage
	for _, p := range list.Items {
		u.Pods++
		for _, c := range p.Containers {
			if q, err := resource.ParseQuantity(c.Usage["cpu"]); err == nil {
				u.CPUMilli += q.MilliValue()
			}
			if q, err := resource.ParseQuantity(c.Usage["memory"]); err == nil {
				u.MemoryBytes += q.Value()
			}
		}
	}
	return u, nil
}
