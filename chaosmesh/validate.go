package chaosmesh

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// chaosObject is what every Chaos Mesh kind of the catalogue implements:
// its own defaulting and validation (the code of Chaos Mesh's admission
// webhook) and its status.
type chaosObject interface {
	client.Object
	Default(ctx context.Context, obj runtime.Object) error
	ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error)
	GetStatus() *v1alpha1.ChaosStatus
	GetSelectorSpecs() map[string]interface{}
}

// Validate checks an experiment the way the cluster would, before anything is
// sent: Chaos Mesh's Default() then ValidateCreate() on a copy (the CRD schema
// alone accepts e.g. "duration: forever"), and that every selector stays
// inside the lab namespace.
func Validate(ctx context.Context, e Experiment) error {
	switch e.Kind {
	case KindNodeFailure:
		if e.Node == "" {
			return fmt.Errorf("experiment %s: no node to stop", e.Name)
		}
		if e.Duration <= 0 {
			return fmt.Errorf("experiment %s: the node must stay down for a positive duration, got %s", e.Name, e.Duration)
		}
		return nil
	case KindChaos:
	default:
		return fmt.Errorf("experiment %s: unknown kind %q", e.Name, e.Kind)
	}
	obj, ok := e.Object.DeepCopyObject().(chaosObject)
	if !ok {
		return fmt.Errorf("experiment %s: %T is not a Chaos Mesh experiment kind", e.Name, e.Object)
	}
	if err := defaultAndValidate(ctx, obj); err != nil {
		return fmt.Errorf("experiment %s: %w", e.Name, err)
	}
	return nil
}

// defaultAndValidate applies Chaos Mesh's defaults to obj in place and
// validates it with Chaos Mesh's own code and the lab's scope rule.
func defaultAndValidate(ctx context.Context, obj chaosObject) error {
	if err := obj.Default(ctx, obj); err != nil {
		return fmt.Errorf("apply Chaos Mesh defaults: %w", err)
	}
	if _, err := obj.ValidateCreate(ctx, obj); err != nil {
		return fmt.Errorf("rejected by Chaos Mesh's validation: %w", err)
	}
	return checkScope(obj)
}

// ErrOutOfScope is returned for a selector that could reach pods outside the
// lab namespace.
var ErrOutOfScope = errors.New("selector reaches outside the lab namespace")

// checkScope makes sure that the object lives in one namespace and that each
// of its selectors names exactly that namespace, so no experiment can touch a
// pod of another namespace (Chaos Mesh selects cluster-wide when a selector
// names no namespace).
func checkScope(obj chaosObject) error {
	ns := obj.GetNamespace()
	if ns == "" {
		return fmt.Errorf("%w: the object has no namespace", ErrOutOfScope)
	}
	for key, s := range obj.GetSelectorSpecs() {
		var spec *v1alpha1.PodSelectorSpec
		switch x := s.(type) {
		case *v1alpha1.PodSelectorSpec:
			spec = x
		case *v1alpha1.PodSelector:
			if x == nil {
				continue
			}
			spec = &x.Selector
		case *v1alpha1.ContainerSelector:
			spec = &x.Selector
		default:
			return fmt.Errorf("%w: selector %s of type %T is not understood", ErrOutOfScope, key, s)
		}
		if !slices.Equal(spec.Namespaces, []string{ns}) {
			return fmt.Errorf("%w: selector %s names namespaces %v, want only %s", ErrOutOfScope, key, spec.Namespaces, ns)
		}
		for pns := range spec.Pods {
			if pns != ns {
				return fmt.Errorf("%w: selector %s names pods in namespace %s", ErrOutOfScope, key, pns)
			}
		}
	}
	return nil
}
