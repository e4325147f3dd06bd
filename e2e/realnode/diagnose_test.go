//go:build !race

package realnode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/shop/probeapi"
)

// What the test logs beside lab's report, to explain its figures: the HPA's
// view and the web pods' usage while the validation runs, and afterwards the
// prober's outages and the pods' restarts.

// watchAutoscaling logs the HPA's metrics and the web pods' usage every
// period until ctx ends; sawMetrics is set once the HPA has a CPU
// utilization.
func watchAutoscaling(ctx context.Context, t *testing.T, cs kubernetes.Interface, period time.Duration, sawMetrics *atomic.Bool) {
	t.Helper()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var line []string
		if h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(stackNS).Get(ctx, "jewelry-shop-web", metav1.GetOptions{}); err == nil {
			for _, m := range h.Status.CurrentMetrics {
				if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
					if m.Resource.Name == "cpu" {
						sawMetrics.Store(true)
					}
					line = append(line, fmt.Sprintf("%s %d%%", m.Resource.Name, *m.Resource.Current.AverageUtilization))
				}
			}
			line = append(line, fmt.Sprintf("replicas %d→%d", h.Status.CurrentReplicas, h.Status.DesiredReplicas))
			for _, c := range h.Status.Conditions {
				if c.Status != "True" {
					line = append(line, fmt.Sprintf("%s=%s (%s)", c.Type, c.Status, c.Reason))
				}
			}
		}
		raw, err := cs.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/"+stackNS+"/pods").
			Param("labelSelector", "app.kubernetes.io/component=web").DoRaw(ctx)
		if err == nil {
			var list struct {
				Items []struct {
					Metadata   metav1.ObjectMeta `json:"metadata"`
					Containers []struct {
						Usage map[string]string `json:"usage"`
					} `json:"containers"`
				} `json:"items"`
			}
			if json.Unmarshal(raw, &list) == nil {
				for _, it := range list.Items {
					for _, c := range it.Containers {
						line = append(line, fmt.Sprintf("%s cpu %s mem %s", it.Metadata.Name[strings.LastIndex(it.Metadata.Name, "-")+1:], c.Usage["cpu"], c.Usage["memory"]))
					}
				}
			}
		}
		t.Logf("autoscaling: %s", strings.Join(line, "; "))
	}
}

// logProber logs the prober's outages per store.
func logProber(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	raw, err := cs.CoreV1().Services(stackNS).ProxyGet("http", "jewelry-shop-probe", "http", "/timeline", nil).DoRaw(t.Context())
	if err != nil {
		t.Logf("prober: read the timeline: %v", err)
		return
	}
	var tl probeapi.Timeline
	if err := json.Unmarshal(raw, &tl); err != nil {
		t.Logf("prober: decode the timeline: %v", err)
		return
	}
	for name, st := range tl.Stores {
		t.Logf("prober %s since %s: %d attempted, %d acked, %d failed, %d outages", name, tl.Started.Format(time.TimeOnly), st.Attempted, st.Acked, st.Failed, len(st.Outages))
		for _, o := range st.Outages {
			end := "still"
			if o.End != nil {
				end = o.End.Format("15:04:05.000")
			}
			t.Logf("  %s outage %s → %s: %d failed, first error %q", name, o.Start.Format("15:04:05.000"), end, o.Failed, o.FirstError)
		}
	}
}

// logPods logs the stack's pods: node, readiness, restarts.
func logPods(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	pods, err := cs.CoreV1().Pods(stackNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Logf("pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		var restarts []string
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount > 0 {
				msg := ""
				if c.LastTerminationState.Terminated != nil {
					msg = " last " + c.LastTerminationState.Terminated.Reason
				}
				restarts = append(restarts, fmt.Sprintf("%s %d restarts%s", c.Name, c.RestartCount, msg))
			}
		}
		t.Logf("pod %s on %s: %s created %s %v", p.Name, p.Spec.NodeName, p.Status.Phase, p.CreationTimestamp.Format(time.TimeOnly), restarts)
	}
}
