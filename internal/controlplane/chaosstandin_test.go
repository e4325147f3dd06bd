package controlplane_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

// TestChaosStandInSelects checks that the Chaos Mesh stand-in picks the
// pods Chaos Mesh would: a PodChaos that names a pod (lab's Redis master
// kill) hits that pod and no other, one that selects by labels hits one of
// the labelled pods, and a pod-failure swaps the images for the pause image
// and restores them when the chaos is deleted, which its finalizer waits
// for.
func TestChaosStandInSelects(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ctx := t.Context()
	ns := env.Namespace(t)
	for _, d := range []string{"other", "target"} {
		if err := env.Client.Create(ctx, deployment(ns, d, 2, nil)); err != nil {
			t.Fatal(err)
		}
	}
	others := waitRunning(t, env, ns, "other", 2, time.Minute)
	targets := waitRunning(t, env, ns, "target", 2, time.Minute)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	var kills []controlplane.Kill
	go controlplane.RunChaosStandInWith(sctx, env.Client, ns, controlplane.StandIn{PauseImage: "example.invalid/pause:1", OnKill: func(k controlplane.Kill) {
		mu.Lock()
		defer mu.Unlock()
		kills = append(kills, k)
	}})
	killed := func() []controlplane.Kill {
		mu.Lock()
		defer mu.Unlock()
		return append([]controlplane.Kill(nil), kills...)
	}
	create := func(name string, action chaosv1alpha1.PodChaosAction, sel chaosv1alpha1.PodSelectorSpec, duration *string) *chaosv1alpha1.PodChaos {
		pc := &chaosv1alpha1.PodChaos{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: chaosv1alpha1.PodChaosSpec{
				ContainerSelector: chaosv1alpha1.ContainerSelector{PodSelector: chaosv1alpha1.PodSelector{Selector: sel, Mode: chaosv1alpha1.OneMode}},
				Action:            action,
				Duration:          duration,
			},
		}
		if err := env.Client.Create(ctx, pc); err != nil {
			t.Fatal(err)
		}
		return pc
	}
	waitKills := func(n int) []controlplane.Kill {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return len(killed()) >= n, nil
		}); err != nil {
			t.Fatalf("the stand-in did %v, want %d injections", killed(), n)
		}
		return killed()
	}

	named := targets[1].Name
	create("by-name", chaosv1alpha1.PodKillAction, chaosv1alpha1.PodSelectorSpec{
		GenericSelectorSpec: chaosv1alpha1.GenericSelectorSpec{Namespaces: []string{ns}},
		Pods:                map[string][]string{ns: {named}},
	}, nil)
	if k := waitKills(1); k[0].Pod != named {
		t.Errorf("the PodChaos naming %s deleted %s", named, k[0].Pod)
	}

	create("by-label", chaosv1alpha1.PodFailureAction, chaosv1alpha1.PodSelectorSpec{
		GenericSelectorSpec: chaosv1alpha1.GenericSelectorSpec{Namespaces: []string{ns}, LabelSelectors: map[string]string{"app": "other"}},
	}, ptr.To("1h"))
	k := waitKills(2)[1]
	if k.Pod != others[0].Name && k.Pod != others[1].Name {
		t.Errorf("the PodChaos selecting app=other failed %s, none of %s, %s", k.Pod, others[0].Name, others[1].Name)
	}
	image := func() string {
		var p corev1.Pod
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: k.Pod}, &p); err != nil {
			t.Fatal(err)
		}
		return p.Spec.Containers[0].Image
	}
	if got := image(); got != "example.invalid/pause:1" {
		t.Errorf("the failed pod's image is %s, want the pause image", got)
	}
	pc := &chaosv1alpha1.PodChaos{ObjectMeta: metav1.ObjectMeta{Name: "by-label", Namespace: ns}}
	if err := env.Client.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(pc), pc)
		return err != nil, nil
	}); err != nil {
		t.Fatal("the deleted pod-failure is still there")
	}
	if got, want := image(), others[0].Spec.Containers[0].Image; got != want {
		t.Errorf("after the pod-failure the image is %s, want %s back", got, want)
	}

	// A NetworkChaos is not injected, and its record says why.
	nc := &chaosv1alpha1.NetworkChaos{
		ObjectMeta: metav1.ObjectMeta{Name: "partition", Namespace: ns},
		Spec: chaosv1alpha1.NetworkChaosSpec{
			PodSelector: chaosv1alpha1.PodSelector{Selector: chaosv1alpha1.PodSelectorSpec{GenericSelectorSpec: chaosv1alpha1.GenericSelectorSpec{Namespaces: []string{ns}}}, Mode: chaosv1alpha1.AllMode},
			Action:      chaosv1alpha1.PartitionAction,
		},
	}
	if err := env.Client.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	var why string
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil || len(nc.Status.Experiment.Records) == 0 {
			return false, nil
		}
		why = nc.Status.Experiment.Records[0].Events[0].Message
		return true, nil
	})
	if !strings.Contains(why, "stand-in") {
		t.Errorf("the NetworkChaos's record says %q, want why the stand-in does not inject it", why)
	}
}
