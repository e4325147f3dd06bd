package lab

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Usage is the summed resource usage of a set of pods.
type Usage struct {
	CPUMilli    int64
	MemoryBytes int64
	Pods        int
}

// MetricsReader reads the current usage of the pods a selector picks, from
// the metrics API (metrics-server).
type MetricsReader interface {
	Usage(ctx context.Context, namespace string, selector map[string]string) (Usage, error)
}

// KubeMetrics is the real MetricsReader: metrics.k8s.io through the API
// server, which k3s' metrics-server serves.
type KubeMetrics struct{ Kube kubernetes.Interface }

// Usage implements MetricsReader.
func (m KubeMetrics) Usage(ctx context.Context, namespace string, selector map[string]string) (Usage, error) {
	raw, err := m.Kube.Discovery().RESTClient().Get().
		AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", namespace, "pods").
		Param("labelSelector", labels.Set(selector).String()).DoRaw(ctx)
	if err != nil {
		return Usage{}, fmt.Errorf("read pod metrics: %w", err)
	}
	return parsePodMetrics(raw)
}

// parsePodMetrics sums a metrics.k8s.io PodMetricsList.
func parsePodMetrics(raw []byte) (Usage, error) {
	var list struct {
		Items []struct {
			Containers []struct {
				Usage map[string]string `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return Usage{}, fmt.Errorf("decode pod metrics: %w", err)
	}
	var u Usage
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

// stressRose says whether the usage during a stress shows it: for CPU at
// least 100m more and half again the usage before, for memory at least
// 128 MiB more. StressChaos on containerd cgroups can silently do nothing,
// so a stress that does not show is not reported on.
func stressRose(cpu bool, before, during Usage) bool {
	if cpu {
		return during.CPUMilli-before.CPUMilli >= 100 && during.CPUMilli*2 >= before.CPUMilli*3
	}
	return during.MemoryBytes-before.MemoryBytes >= 128<<20
}
