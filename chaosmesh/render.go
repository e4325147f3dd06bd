package chaosmesh

import (
	"fmt"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"sigs.k8s.io/yaml"
)

// Render returns the experiment's Chaos Mesh object as YAML, with the run
// label as Apply would set it, for `--dry-run` and review. Node failure is not
// a Chaos Mesh object; Render returns ok false for it.
func Render(e Experiment, runID string) (out []byte, ok bool, err error) {
	if e.Kind != KindChaos {
		return nil, false, nil
	}
	obj, err := prepare(e, runID)
	if err != nil {
		return nil, true, err
	}
	gvk := v1alpha1.SchemeGroupVersion.WithKind(kindOf(obj))
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	// Marshal through a map to leave out the empty status a new object has.
	var m map[string]any
	b, err := yaml.Marshal(obj)
	if err == nil {
		err = yaml.Unmarshal(b, &m)
	}
	if err == nil {
		delete(m, "status")
		out, err = yaml.Marshal(m)
	}
	if err != nil {
		return nil, true, fmt.Errorf("render experiment %s: %w", e.Name, err)
	}
	return out, true, nil
}

func kindOf(obj chaosObject) string {
	switch obj.(type) {
	case *v1alpha1.PodChaos:
		return v1alpha1.KindPodChaos
	case *v1alpha1.NetworkChaos:
		return v1alpha1.KindNetworkChaos
	case *v1alpha1.StressChaos:
		return v1alpha1.KindStressChaos
	default:
		return fmt.Sprintf("%T", obj)
	}
}

// prepare copies the experiment's object and gives it the run's name and
// labels: <name>-<run id>, so that runs never collide.
func prepare(e Experiment, runID string) (chaosObject, error) {
	obj, ok := e.Object.DeepCopyObject().(chaosObject)
	if !ok {
		return nil, fmt.Errorf("experiment %s: %T is not a Chaos Mesh experiment kind", e.Name, e.Object)
	}
	if runID != "" {
		obj.SetName(e.Name + "-" + runID)
	}
	labels := map[string]string{}
	for k, v := range obj.GetLabels() {
		labels[k] = v
	}
	labels[ManagedByLabel] = ManagedByValue
	labels[ExperimentLabel] = e.Name
	if runID != "" {
		labels[RunLabel] = runID
	}
	obj.SetLabels(labels)
	obj.SetResourceVersion("")
	return obj, nil
}
