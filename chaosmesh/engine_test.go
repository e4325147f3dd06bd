package chaosmesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// targetsIn is the catalogue's targets in a test namespace.
func targetsIn(ns string) Targets {
	t := testTargets()
	t.Namespace = ns
	return t
}

func newTestEngine(c client.Client) *Engine {
	e := NewEngine(c, nil)
	e.poll = 100 * time.Millisecond
	return e
}

// TestAPIAcceptsCatalogue creates every Chaos Mesh object of the catalogue
// in the real API server with the CRDs generated from the api module, and
// removes it again.
func TestAPIAcceptsCatalogue(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	e := newTestEngine(env.Client)
	for _, exp := range Catalogue(targetsIn(ns), DefaultTiming()) {
		if exp.Kind != KindChaos {
			continue
		}
		t.Run(exp.Name, func(t *testing.T) {
			a, undo, err := e.Apply(t.Context(), exp, "accept")
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			got := a.Object.DeepCopyObject().(client.Object)
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(a.Object), got); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if got.GetLabels()[RunLabel] != "accept" || got.GetLabels()[ManagedByLabel] != ManagedByValue {
				t.Errorf("labels %v", got.GetLabels())
			}
			if err := undo(t.Context()); err != nil {
				t.Fatalf("undo: %v", err)
			}
			if err := undo(t.Context()); err != nil {
				t.Errorf("second undo: %v", err)
			}
		})
	}
}

// TestAPIRejectsInvalidEnum shows why objects are validated before they are
// sent and that the CRD schema is in force: an unknown action is refused by
// the API server itself.
func TestAPIRejectsInvalidEnum(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	exp, _ := Find(Catalogue(targetsIn(ns), DefaultTiming()), WebPodKill)
	obj := exp.Object.DeepCopyObject().(*v1alpha1.PodChaos)
	obj.Spec.Action = "pod-explode"
	err := env.Client.Create(t.Context(), obj)
	if err == nil || !strings.Contains(err.Error(), "pod-explode") {
		t.Fatalf("Create with an invalid action = %v, want a rejection naming it", err)
	}
}

func TestNotInjectedWithoutController(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	e := newTestEngine(env.Client)
	exp, _ := Find(Catalogue(targetsIn(ns), DefaultTiming()), WebPodFailure)
	a, undo, err := e.Apply(t.Context(), exp, "nocontroller")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := undo(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("undo: %v", err)
		}
	}()
	inj, err := e.WaitInjected(t.Context(), a, time.Second)
	var ni *NotInjectedError
	if !errors.As(err, &ni) || inj.Injected {
		t.Fatalf("WaitInjected = %+v, %v; want a NotInjectedError", inj, err)
	}
	if !strings.Contains(err.Error(), "no status conditions") || !strings.Contains(err.Error(), "chaos-mesh") {
		t.Errorf("the error does not say what to look at: %v", err)
	}
}

// TestPodKillObservedAndReplaced kills a web pod through the engine, with
// the real deployment and replicaset controllers and the scheduler on kwok
// nodes: the injection time comes from the status, and the killed pod is
// replaced; the time until all replicas are Ready again is measured.
func TestPodKillObservedAndReplaced(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ns := env.Namespace(t)
	targets := targetsIn(ns)
	createDeployment(t, env.Client, ns, "web", targets.Web, 3)
	waitReadyReplicas(t, env.Client, ns, "web", 3, nil, time.Minute)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	killed := map[string]controlplane.Kill{}
	go controlplane.RunChaosStandIn(ctx, env.Client, ns, func(k controlplane.Kill) {
		mu.Lock()
		defer mu.Unlock()
		killed[k.Chaos] = k
	})

	e := newTestEngine(env.Client)
	exp, _ := Find(Catalogue(targets, DefaultTiming()), WebPodKill)
	a, undo, err := e.Apply(t.Context(), exp, "kill")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := undo(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("undo: %v", err)
		}
	}()
	inj, err := e.WaitInjected(t.Context(), a, 30*time.Second)
	if err != nil {
		t.Fatalf("WaitInjected: %v", err)
	}
	// The stand-in writes the status before it reports the kill: the
	// status can be seen first.
	var rec controlplane.Kill
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		r, ok := killed[a.Object.GetName()]
		mu.Unlock()
		if ok {
			rec = r
			break
		}
	}
	if !inj.FromRecords || !inj.At.Equal(rec.At) {
		t.Errorf("injection at %v (from records %v), the stand-in killed %s at %v", inj.At, inj.FromRecords, rec.Pod, rec.At)
	}
	start := time.Now()
	waitReadyReplicas(t, env.Client, ns, "web", 3, []string{rec.Pod}, time.Minute)
	t.Logf("pod %s killed; 3 Ready replicas again %v after the kill was observed", rec.Pod, time.Since(start).Round(10*time.Millisecond))
}

// TestCancelLeavesNothing cancels a run right after the experiments were
// created: the undo functions, called with the dead context as a deferred
// cleanup would, still remove every object, and Sweep finds nothing more.
func TestCancelLeavesNothing(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	e := newTestEngine(env.Client)
	ctx, cancel := context.WithCancel(t.Context())
	var undos []func(context.Context) error
	for _, name := range []string{WebPodFailure, WebPostgresPartition, WebCPUStress} {
		exp, _ := Find(Catalogue(targetsIn(ns), DefaultTiming()), name)
		_, undo, err := e.Apply(ctx, exp, "cancelled")
		if err != nil {
			t.Fatal(err)
		}
		undos = append(undos, undo)
	}
	cancel()
	for _, undo := range undos {
		if err := undo(ctx); err != nil {
			t.Errorf("undo after cancel: %v", err)
		}
	}
	assertNoChaos(t, env.Client, ns)
}

// TestSweep removes the leftovers of earlier runs and nothing else.
func TestSweep(t *testing.T) {
	env := controlplane.Start(t, controlplane.Options{})
	ns := env.Namespace(t)
	e := newTestEngine(env.Client)
	for i, name := range []string{WebPodFailure, WebMemoryStress, WebPostgresPartition} {
		exp, _ := Find(Catalogue(targetsIn(ns), DefaultTiming()), name)
		if _, _, err := e.Apply(t.Context(), exp, fmt.Sprintf("old%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	foreign, _ := Find(Catalogue(targetsIn(ns), DefaultTiming()), WebPodKill)
	theirs := foreign.Object.DeepCopyObject().(*v1alpha1.PodChaos)
	theirs.Name, theirs.Labels = "someone-elses", map[string]string{"team": "sre"}
	if err := env.Client.Create(t.Context(), theirs); err != nil {
		t.Fatal(err)
	}
	removed, err := e.Sweep(t.Context(), ns)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	want := []string{"web-memory-stress-old1", "web-pod-failure-old0", "web-postgres-partition-old2"}
	if strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %v, want %v", removed, want)
	}
	var left v1alpha1.PodChaosList
	if err := env.Client.List(t.Context(), &left, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 1 || left.Items[0].Name != "someone-elses" {
		t.Errorf("left %d PodChaos, want only someone-elses", len(left.Items))
	}
	if removed, err := e.Sweep(t.Context(), ns); err != nil || len(removed) != 0 {
		t.Errorf("second Sweep = %v, %v; want nothing", removed, err)
	}
}

func assertNoChaos(t *testing.T, c client.Client, ns string) {
	t.Helper()
	for _, list := range kindLists() {
		if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, o := range objects(list) {
			t.Errorf("left behind: %s", o.GetName())
		}
	}
}

func createDeployment(t *testing.T, c client.Client, ns, name string, labels map[string]string, replicas int32) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// kwok runs no container; the image points at a closed
					// loopback port anyway, so nothing is ever pulled.
					Containers: []corev1.Container{{Name: "web", Image: "127.0.0.1:5999/shop:test"}},
				},
			},
		},
	}
	if err := c.Create(t.Context(), d); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
}

// waitReadyReplicas waits until want pods of the deployment are Ready, none
// of them named in gone.
func waitReadyReplicas(t *testing.T, c client.Client, ns, name string, want int, gone []string, timeout time.Duration) {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var pods corev1.PodList
		if err := c.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || contains(gone, p.Name) {
				continue
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods of %s Ready after %s", ready, want, name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
