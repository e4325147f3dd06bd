package kube

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/reports"
)

// HealthChecks reads the probes of the live workloads: the Deployments and
// StatefulSets of a namespace as the API server has them (not as the chart
// renders them), every container of each.
type HealthChecks struct {
	Kube      kubernetes.Interface
	Namespace string
}

// Probes lists every workload with its probes. A workload counts as probed only when
// every one of its containers has the probe.
func (k HealthChecks) Probes(ctx context.Context) ([]reports.WorkloadProbes, error) {
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
