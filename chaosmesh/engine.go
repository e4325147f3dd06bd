package chaosmesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// deleteTimeout bounds a cleanup; it runs even after the caller's context was
// cancelled (Ctrl-C), so that no fault is left behind.
const deleteTimeout = 90 * time.Second

// Scheme returns a scheme with the Kubernetes core types and Chaos Mesh's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register Kubernetes types: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register Chaos Mesh types: %w", err)
	}
	return s, nil
}

// NewClient returns a controller-runtime client that knows Chaos Mesh's kinds.
func NewClient(cfg *rest.Config) (client.Client, error) {
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return c, nil
}

// Engine applies experiments to a cluster and removes them again.
type Engine struct {
	c    client.Client
	log  *slog.Logger
	now  func() time.Time
	poll time.Duration
}

// NewEngine returns an engine on a client with Chaos Mesh's scheme. A nil
// logger discards.
func NewEngine(c client.Client, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{c: c, log: log, now: time.Now, poll: time.Second}
}

// Applied is an experiment object that exists in the cluster.
type Applied struct {
	Experiment Experiment
	Object     client.Object
	CreatedAt  time.Time
}

// Apply validates the experiment, labels it with the run, and creates it. The
// returned undo deletes it; it is safe to call more than once and works after
// ctx was cancelled. Node-failure experiments are not Chaos Mesh objects and
// are refused here.
func (e *Engine) Apply(ctx context.Context, exp Experiment, runID string) (*Applied, func(context.Context) error, error) {
	if exp.Kind != KindChaos {
		return nil, nil, fmt.Errorf("experiment %s is a %s, not a Chaos Mesh object", exp.Name, exp.Kind)
	}
	if runID == "" {
		return nil, nil, fmt.Errorf("experiment %s: no run id", exp.Name)
	}
	obj, err := prepare(exp, runID)
	if err != nil {
		return nil, nil, err
	}
	if err := defaultAndValidate(ctx, obj); err != nil {
		return nil, nil, fmt.Errorf("experiment %s: %w", exp.Name, err)
	}
	if err := e.c.Create(ctx, obj); err != nil {
		return nil, nil, fmt.Errorf("create %s %s/%s: %w", kindOf(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	a := &Applied{Experiment: exp, Object: obj, CreatedAt: e.now()}
	e.log.Info("experiment created", "experiment", exp.Name, "object", obj.GetName(), "run", runID)
	undo := func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
		defer cancel()
		return e.Delete(cctx, a)
	}
	return a, undo, nil
}

// Injection is what the object's status says about the fault.
type Injection struct {
	// Injected is true once Chaos Mesh reports AllInjected.
	Injected bool
	// At is when the fault was injected: the latest successful apply event of
	// the object's records, or else the poll that first saw AllInjected.
	At time.Time
	// FromRecords says whether At came from Chaos Mesh's records (exact) or
	// from the poll (late by at most the poll interval).
	FromRecords bool
	// Reason explains a fault that was not injected, with the object's events.
	Reason string
}

// NotInjectedError says that Chaos Mesh never reported the fault injected.
type NotInjectedError struct {
	Experiment string
	Object     string
	Timeout    time.Duration
	Reason     string
}

func (e *NotInjectedError) Error() string {
	return fmt.Sprintf("experiment %s not injected within %s (%s): %s", e.Experiment, e.Timeout, e.Object, e.Reason)
}

// WaitInjected polls the object's status until Chaos Mesh reports
// AllInjected, or timeout passes, in which case it returns a
// NotInjectedError that carries the object's conditions and events.
func (e *Engine) WaitInjected(ctx context.Context, a *Applied, timeout time.Duration) (Injection, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(e.poll)
	defer t.Stop()
	key := client.ObjectKeyFromObject(a.Object)
	var lastErr error
	for {
		obj := a.Object.DeepCopyObject().(client.Object)
		if err := e.c.Get(wctx, key, obj); err == nil {
			if inj, ok := injection(obj.(chaosObject), e.now()); ok {
				return inj, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return Injection{}, ctx.Err()
			}
			reason := e.explain(ctx, a, lastErr)
			return Injection{Reason: reason}, &NotInjectedError{Experiment: a.Experiment.Name, Object: a.Object.GetName(), Timeout: timeout, Reason: reason}
		case <-t.C:
		}
	}
}

// injection reads AllInjected from the status and the injection time from the
// records' successful apply events.
func injection(obj chaosObject, observed time.Time) (Injection, bool) {
	st := obj.GetStatus()
	injected := false
	for _, c := range st.Conditions {
		if c.Type == v1alpha1.ConditionAllInjected && c.Status == corev1.ConditionTrue {
			injected = true
		}
	}
	if !injected {
		return Injection{}, false
	}
	var at time.Time
	for _, r := range st.Experiment.Records {
		for _, ev := range r.Events {
			if ev.Operation == v1alpha1.Apply && ev.Type == v1alpha1.TypeSucceeded && ev.Timestamp != nil && ev.Timestamp.After(at) {
				at = ev.Timestamp.Time
			}
		}
	}
	if at.IsZero() {
		return Injection{Injected: true, At: observed}, true
	}
	return Injection{Injected: true, At: at, FromRecords: true}, true
}

// explain describes why an object is not injected: its conditions, failed
// record events and Kubernetes events.
func (e *Engine) explain(ctx context.Context, a *Applied, getErr error) string {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var parts []string
	obj := a.Object.DeepCopyObject().(client.Object)
	if err := e.c.Get(cctx, client.ObjectKeyFromObject(a.Object), obj); err != nil {
		if getErr == nil {
			getErr = err
		}
		parts = append(parts, fmt.Sprintf("the object could not be read (%v)", getErr))
	} else {
		st := obj.(chaosObject).GetStatus()
		if len(st.Conditions) == 0 {
			parts = append(parts, "no status conditions at all: is the Chaos Mesh controller running? (kubectl -n chaos-mesh get pods)")
		}
		for _, c := range st.Conditions {
			parts = append(parts, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Reason))
		}
		for _, r := range st.Experiment.Records {
			for _, ev := range r.Events {
				if ev.Type == v1alpha1.TypeFailed {
					parts = append(parts, fmt.Sprintf("%s on %s failed: %s", ev.Operation, r.Id, ev.Message))
				}
			}
		}
	}
	var events corev1.EventList
	if err := e.c.List(cctx, &events, client.InNamespace(a.Object.GetNamespace())); err == nil {
		sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp) })
		for _, ev := range events.Items {
			if ev.InvolvedObject.Name == a.Object.GetName() {
				parts = append(parts, fmt.Sprintf("event %s: %s", ev.Reason, ev.Message))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// Delete removes the object and waits until it is gone, so that Chaos Mesh
// has recovered the fault (its finalizer holds the object until then).
func (e *Engine) Delete(ctx context.Context, a *Applied) error {
	return e.deleteAndWait(ctx, a.Object)
}

func (e *Engine) deleteAndWait(ctx context.Context, obj client.Object) error {
	name := fmt.Sprintf("%s %s/%s", kindOf(obj.(chaosObject)), obj.GetNamespace(), obj.GetName())
	if err := e.c.Delete(ctx, obj, client.PropagationPolicy("Background")); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	t := time.NewTicker(e.poll / 2)
	defer t.Stop()
	for {
		probe := obj.DeepCopyObject().(client.Object)
		err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), probe)
		if apierrors.IsNotFound(err) {
			e.log.Info("experiment removed", "object", name)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete %s: still present (Chaos Mesh has not recovered the fault; check `kubectl -n chaos-mesh get pods` and the object's events): %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// kindLists returns an empty list of each Chaos Mesh kind the catalogue uses.
func kindLists() []client.ObjectList {
	return []client.ObjectList{&v1alpha1.PodChaosList{}, &v1alpha1.NetworkChaosList{}, &v1alpha1.StressChaosList{}}
}

// Sweep removes every chaos object lab created in the namespace, of any run:
// the leftovers of an interrupted or crashed run. It returns the names of
// what it removed.
func (e *Engine) Sweep(ctx context.Context, namespace string) ([]string, error) {
	var removed []string
	var errs []error
	for _, list := range kindLists() {
		if err := e.c.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{ManagedByLabel: ManagedByValue}); err != nil {
			if isNoKind(err) {
				continue // Chaos Mesh not installed: nothing of it can be left
			}
			errs = append(errs, fmt.Errorf("list leftovers: %w", err))
			continue
		}
		for _, obj := range objects(list) {
			if _, ok := obj.GetLabels()[ExperimentLabel]; !ok {
				continue // another tool's object with the same managed-by label
			}
			if err := e.deleteAndWait(ctx, obj); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, obj.GetName())
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

func objects(list client.ObjectList) []client.Object {
	var out []client.Object
	switch l := list.(type) {
	case *v1alpha1.PodChaosList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v1alpha1.NetworkChaosList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v1alpha1.StressChaosList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out
}

// isNoKind reports an error saying that the cluster does not know the kind.
func isNoKind(err error) bool {
	return meta.IsNoMatchError(err) || apierrors.IsNotFound(err)
}
