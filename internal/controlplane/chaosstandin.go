package controlplane

import (
	"context"
	"sort"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kill is what the Chaos Mesh stand-in did for one PodChaos.
type Kill struct {
	Chaos string    // the PodChaos
	Pod   string    // the pod it deleted (pod-kill) or selected
	At    time.Time // when, as its records say (to the second, as Chaos Mesh writes them)
}

// RunChaosStandIn plays Chaos Mesh's controller for the PodChaos objects of
// a namespace until ctx ends, for tests only (the product never does this):
// for a pod-kill it deletes the first selected pod by name, for any PodChaos
// it then sets the status Chaos Mesh would, Selected and AllInjected with
// the time in the records. onKill, when set, is told about each.
func RunChaosStandIn(ctx context.Context, c client.Client, namespace string, onKill func(Kill)) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		reconcilePodChaos(ctx, c, namespace, onKill)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func reconcilePodChaos(ctx context.Context, c client.Client, namespace string, onKill func(Kill)) {
	var list chaosv1alpha1.PodChaosList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return
	}
	for i := range list.Items {
		pc := &list.Items[i]
		if len(pc.Status.Conditions) > 0 || pc.DeletionTimestamp != nil {
			continue
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels(pc.Spec.Selector.LabelSelectors)); err != nil || len(pods.Items) == 0 {
			continue
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		victim := pods.Items[0]
		if pc.Spec.Action == chaosv1alpha1.PodKillAction {
			if err := c.Delete(ctx, &victim, client.GracePeriodSeconds(0)); err != nil {
				continue
			}
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		pc.Status.Conditions = []chaosv1alpha1.ChaosCondition{
			{Type: chaosv1alpha1.ConditionSelected, Status: corev1.ConditionTrue},
			{Type: chaosv1alpha1.ConditionAllInjected, Status: corev1.ConditionTrue},
		}
		pc.Status.Experiment.Records = []*chaosv1alpha1.Record{{
			Id: namespace + "/" + victim.Name, SelectorKey: ".", Phase: chaosv1alpha1.Injected, InjectedCount: 1,
			Events: []chaosv1alpha1.RecordEvent{{Type: chaosv1alpha1.TypeSucceeded, Operation: chaosv1alpha1.Apply, Timestamp: &now}},
		}}
		if err := c.Update(ctx, pc); err != nil {
			continue
		}
		if onKill != nil {
			onKill(Kill{Chaos: pc.Name, Pod: victim.Name, At: now.Time})
		}
	}
}
