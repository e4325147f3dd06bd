package controlplane

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kill is what the Chaos Mesh stand-in did for one PodChaos.
type Kill struct {
	Chaos  string    // the PodChaos
	Action string    // pod-kill, pod-failure
	Pod    string    // the pod it deleted (pod-kill), failed (pod-failure) or selected
	At     time.Time // when, as its records say (to the second, as Chaos Mesh writes them)
}

// StandIn configures the Chaos Mesh stand-in.
type StandIn struct {
	// PauseImage is the image a pod-failure puts in place of every
	// container's, as Chaos Mesh's chaos-controller-manager does with its
	// own pause image; without it, a pod-failure only gets its status.
	PauseImage string
	// OnKill, when set, is told about each injection.
	OnKill func(Kill)
}

// standInFinalizer holds a failed pod's PodChaos until its images are back,
// as Chaos Mesh's own finalizer does.
const standInFinalizer = "chaos-mesh/records"

// originalImage is the annotation, per container, that keeps the image a
// pod-failure replaced.
const originalImage = "lab.jewelry-shop.dev/stand-in-original-image-"

// RunChaosStandIn is RunChaosStandInWith without a pause image.
func RunChaosStandIn(ctx context.Context, c client.Client, namespace string, onKill func(Kill)) {
	RunChaosStandInWith(ctx, c, namespace, StandIn{OnKill: onKill})
}

// RunChaosStandInWith plays Chaos Mesh's controller for the PodChaos objects
// of a namespace until ctx ends, for tests only (the product never does
// this). It selects pods as Chaos Mesh does (the selector's namespaces,
// labels and pod names; not those being deleted; one at random in mode
// one), then for a pod-kill deletes them with grace period 0, and for a
// pod-failure replaces every container's image with s.PauseImage for the
// chaos's duration (until it is deleted at the latest, which its finalizer
// waits for) and restores them, so that a real kubelet stops and restarts
// the containers. It sets the status Chaos Mesh would: Selected and
// AllInjected, with the time in the records, and AllRecovered once a
// pod-failure is over. NetworkChaos and StressChaos it does not inject (that
// is chaos-daemon's work inside the pods' namespaces): it records their
// application as failed, saying so, which is what lab then reports.
func RunChaosStandInWith(ctx context.Context, c client.Client, namespace string, s StandIn) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		reconcilePodChaos(ctx, c, namespace, s)
		refuseUninjectable(ctx, c, namespace)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func reconcilePodChaos(ctx context.Context, c client.Client, namespace string, s StandIn) {
	var list chaosv1alpha1.PodChaosList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return
	}
	for i := range list.Items {
		pc := &list.Items[i]
		switch {
		case pc.DeletionTimestamp != nil:
			if slices.Contains(pc.Finalizers, standInFinalizer) && restoreImages(ctx, c, pc) {
				pc.Finalizers = slices.DeleteFunc(pc.Finalizers, func(f string) bool { return f == standInFinalizer })
				_ = c.Update(ctx, pc)
			}
		case len(pc.Status.Conditions) == 0:
			inject(ctx, c, pc, s)
		case pc.Spec.Action == chaosv1alpha1.PodFailureAction && !recovered(pc) && expired(pc):
			if restoreImages(ctx, c, pc) {
				pc.Status.Conditions = append(pc.Status.Conditions, chaosv1alpha1.ChaosCondition{Type: chaosv1alpha1.ConditionAllRecovered, Status: corev1.ConditionTrue})
				_ = c.Update(ctx, pc)
			}
		}
	}
}

// inject selects the pods and carries out the chaos's action on them.
func inject(ctx context.Context, c client.Client, pc *chaosv1alpha1.PodChaos, s StandIn) {
	victims := selectPods(ctx, c, pc)
	if len(victims) == 0 {
		return
	}
	if pc.Spec.Action == chaosv1alpha1.PodFailureAction && s.PauseImage != "" && !slices.Contains(pc.Finalizers, standInFinalizer) {
		pc.Finalizers = append(pc.Finalizers, standInFinalizer)
		if err := c.Update(ctx, pc); err != nil {
			return
		}
	}
	var done []corev1.Pod
	for _, v := range victims {
		var err error
		switch {
		case pc.Spec.Action == chaosv1alpha1.PodKillAction:
			err = c.Delete(ctx, &v, client.GracePeriodSeconds(0))
		case pc.Spec.Action == chaosv1alpha1.PodFailureAction && s.PauseImage != "":
			err = failPod(ctx, c, &v, s.PauseImage)
		}
		if err == nil {
			done = append(done, v)
		}
	}
	if len(done) == 0 {
		return
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	pc.Status.Conditions = []chaosv1alpha1.ChaosCondition{
		{Type: chaosv1alpha1.ConditionSelected, Status: corev1.ConditionTrue},
		{Type: chaosv1alpha1.ConditionAllInjected, Status: corev1.ConditionTrue},
	}
	pc.Status.Experiment.Records = nil
	for _, v := range done {
		pc.Status.Experiment.Records = append(pc.Status.Experiment.Records, &chaosv1alpha1.Record{
			Id: v.Namespace + "/" + v.Name, SelectorKey: ".", Phase: chaosv1alpha1.Injected, InjectedCount: 1,
			Events: []chaosv1alpha1.RecordEvent{{Type: chaosv1alpha1.TypeSucceeded, Operation: chaosv1alpha1.Apply, Timestamp: &now}},
		})
	}
	if err := c.Update(ctx, pc); err != nil {
		return
	}
	if s.OnKill != nil {
		for _, v := range done {
			s.OnKill(Kill{Chaos: pc.Name, Action: string(pc.Spec.Action), Pod: v.Name, At: now.Time})
		}
	}
}

// selectPods returns the pods the chaos's selector picks, as Chaos Mesh
// does: in its namespaces (the chaos's own when none), matching its labels,
// among its named pods when it names some, not being deleted; in mode one,
// one of them at random.
func selectPods(ctx context.Context, c client.Client, pc *chaosv1alpha1.PodChaos) []corev1.Pod {
	sel := pc.Spec.Selector
	namespaces := sel.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{pc.Namespace}
	}
	var out []corev1.Pod
	for _, ns := range namespaces {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(sel.LabelSelectors)}); err != nil {
			return nil
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			if names, ok := sel.Pods[ns]; len(sel.Pods) > 0 && (!ok || !slices.Contains(names, p.Name)) {
				continue
			}
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if pc.Spec.Mode == chaosv1alpha1.OneMode && len(out) > 1 {
		out = []corev1.Pod{out[rand.IntN(len(out))]}
	}
	return out
}

// failPod replaces every container's image with the pause image, keeping
// the original in an annotation.
func failPod(ctx context.Context, c client.Client, p *corev1.Pod, pause string) error {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	for i, ctr := range p.Spec.Containers {
		if _, done := p.Annotations[originalImage+ctr.Name]; !done {
			p.Annotations[originalImage+ctr.Name] = ctr.Image
		}
		p.Spec.Containers[i].Image = pause
	}
	return c.Update(ctx, p)
}

// restoreImages puts back the images of the pods the chaos failed; it
// reports whether every one is back (or gone).
func restoreImages(ctx context.Context, c client.Client, pc *chaosv1alpha1.PodChaos) bool {
	ok := true
	for _, r := range pc.Status.Experiment.Records {
		ns, name, found := strings.Cut(r.Id, "/")
		if !found {
			continue
		}
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			continue // gone: nothing to restore
		}
		changed := false
		for i, ctr := range p.Spec.Containers {
			if img, failed := p.Annotations[originalImage+ctr.Name]; failed {
				p.Spec.Containers[i].Image = img
				delete(p.Annotations, originalImage+ctr.Name)
				changed = true
			}
		}
		if changed && c.Update(ctx, &p) != nil {
			ok = false
		}
	}
	return ok
}

func recovered(pc *chaosv1alpha1.PodChaos) bool {
	for _, cd := range pc.Status.Conditions {
		if cd.Type == chaosv1alpha1.ConditionAllRecovered && cd.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// expired reports whether a held chaos has been injected for its duration.
func expired(pc *chaosv1alpha1.PodChaos) bool {
	if pc.Spec.Duration == nil || len(pc.Status.Experiment.Records) == 0 {
		return false
	}
	d, err := time.ParseDuration(*pc.Spec.Duration)
	if err != nil {
		return false
	}
	for _, r := range pc.Status.Experiment.Records {
		for _, e := range r.Events {
			if e.Operation == chaosv1alpha1.Apply && e.Timestamp != nil && time.Since(e.Timestamp.Time) >= d {
				return true
			}
		}
	}
	return false
}

// notInjectedHere is the failure the stand-in records for the chaos kinds
// it does not inject.
const notInjectedHere = "not injected: this is a test stand-in for Chaos Mesh's controller, which acts only through the Kubernetes API (pod kills, pod failures); network and stress faults need chaos-daemon inside the pods' namespaces"

// refuseUninjectable marks every new NetworkChaos and StressChaos of the
// namespace selected but not injected, with a failed apply record saying
// why.
func refuseUninjectable(ctx context.Context, c client.Client, namespace string) {
	var nets chaosv1alpha1.NetworkChaosList
	var stresses chaosv1alpha1.StressChaosList
	var objs []chaosObject
	if err := c.List(ctx, &nets, client.InNamespace(namespace)); err == nil {
		for i := range nets.Items {
			objs = append(objs, &nets.Items[i])
		}
	}
	if err := c.List(ctx, &stresses, client.InNamespace(namespace)); err == nil {
		for i := range stresses.Items {
			objs = append(objs, &stresses.Items[i])
		}
	}
	for _, o := range objs {
		st := o.GetStatus()
		if len(st.Conditions) > 0 || o.GetDeletionTimestamp() != nil {
			continue
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		st.Conditions = []chaosv1alpha1.ChaosCondition{
			{Type: chaosv1alpha1.ConditionSelected, Status: corev1.ConditionTrue},
			{Type: chaosv1alpha1.ConditionAllInjected, Status: corev1.ConditionFalse, Reason: "NotInjectedByStandIn"},
		}
		st.Experiment.Records = []*chaosv1alpha1.Record{{
			Id: o.GetNamespace() + "/" + o.GetName(), SelectorKey: ".", Phase: chaosv1alpha1.NotInjected,
			Events: []chaosv1alpha1.RecordEvent{{Type: chaosv1alpha1.TypeFailed, Operation: chaosv1alpha1.Apply, Message: notInjectedHere, Timestamp: &now}},
		}}
		_ = c.Update(ctx, o)
	}
}

// chaosObject is a chaos kind with Chaos Mesh's common status.
type chaosObject interface {
	client.Object
	GetStatus() *chaosv1alpha1.ChaosStatus
}
