package lab

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/reports"
)

// HealthChecker reads the probes of the live workloads.
type HealthChecker interface {
	Probes(ctx context.Context) ([]reports.WorkloadProbes, error)
}

// KubeHealthChecks is the real HealthChecker: the Deployments and
// StatefulSets of a namespace as the API server has them (not as the chart
// renders them), every container of each.
type KubeHealthChecks struct {
	Kube      kubernetes.Interface
	Namespace string
}

// Probes implements HealthChecker. A workload counts as probed only when
// every one of its containers has the probe.
func (k KubeHealthChecks) Probes(ctx context.Context) ([]reports.WorkloadProbes, error) {
	var out []reports.WorkloadProbes
	deps, err := k.Kube.AppsV1().Deployments(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Deployments: %w", err)
	}
	for _, d := range deps.Items {
		out = append(out, probesOf("Deployment/"+d.Name, d.Spec.Template.Spec.Containers))
	}
	sets, err := k.Kube.AppsV1().StatefulSets(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list StatefulSets: %w", err)
	}
	for _, s := range sets.Items {
		out = append(out, probesOf("StatefulSet/"+s.Name, s.Spec.Template.Spec.Containers))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out, nil
}

func probesOf(workload string, containers []corev1.Container) reports.WorkloadProbes {
	w := reports.WorkloadProbes{Workload: workload, Readiness: len(containers) > 0, Liveness: len(containers) > 0}
	for _, c := range containers {
		w.Readiness = w.Readiness && c.ReadinessProbe != nil
		w.Liveness = w.Liveness && c.LivenessProbe != nil
	}
	return w
}

// HealthPoller polls the shop's health endpoint while the run lasts.
type HealthPoller interface {
	// Poll records until ctx ends and returns one sample per poll.
	Poll(ctx context.Context) []measure.Sample
}

// HTTPHealthPoller is the real HealthPoller: GET URL every Interval
// (default 1 s); a 200 within the client's timeout is a success.
type HTTPHealthPoller struct {
	Client   *http.Client
	URL      string
	Interval time.Duration
	Now      func() time.Time
}

// Poll implements HealthPoller.
func (p HTTPHealthPoller) Poll(ctx context.Context) []measure.Sample {
	interval, now, c := p.Interval, p.Now, p.Client
	if interval <= 0 {
		interval = time.Second
	}
	if now == nil {
		now = time.Now
	}
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var out []measure.Sample
	for {
		at := now()
		ok := false
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil); err == nil {
			if resp, err := c.Do(req); err == nil {
				ok = resp.StatusCode == http.StatusOK
				_ = resp.Body.Close()
			}
		}
		if ctx.Err() != nil {
			return out // a poll cut short by the end of the run is no sample
		}
		out = append(out, measure.Sample{At: at, OK: ok})
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}
