package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chaosv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
)

// ChaosStandInDescription is what the stand-in's Deployment says it is, in
// the annotation lab's report reads (lab.jewelry-shop.dev/stand-in).
const ChaosStandInDescription = "lab's test stand-in: the test process plays Chaos Mesh's controller through the API (pod deletions, pause-image swaps), the kubelets carry them out"

// NewClient is a controller-runtime client for a cluster, with the kinds
// the stand-in handles (Kubernetes', the CRDs', Chaos Mesh's).
func NewClient(rc *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, chaosv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build the client's scheme: %w", err)
		}
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("create the Kubernetes client: %w", err)
	}
	return c, nil
}

// InstallChaosStandIn makes a cluster without Chaos Mesh look, to lab, like
// one with it: the Chaos Mesh CRDs (generated as for the test control
// plane, from the test assets' controller-gen) and, in namespace ns, a
// Deployment chaos-controller-manager and a DaemonSet chaos-daemon of the
// pause image, annotated with ChaosStandInDescription, which lab's report
// names. What Chaos Mesh's controller does is RunChaosStandInWith's, which
// the caller runs for as long as it needs.
func InstallChaosStandIn(ctx context.Context, c client.Client, ns, pauseImage string) error {
	assets, err := AssetsDir()
	if err != nil {
		return err
	}
	dir, err := chaosMeshCRDs(ctx, filepath.Join(assets, "controller-gen"))
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("list the Chaos Mesh CRDs: %w", err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read CRD %s: %w", f, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, crd); err != nil {
			return fmt.Errorf("decode CRD %s: %w", f, err)
		}
		if err := c.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	if err := waitEstablished(ctx, c, names); err != nil {
		return err
	}

	labels := map[string]string{"app.kubernetes.io/name": "chaos-mesh-stand-in"}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{"lab.jewelry-shop.dev/stand-in": ChaosStandInDescription}}
	}
	spec := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "stand-in", Image: pauseImage, ImagePullPolicy: corev1.PullNever}},
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			// On every node, as Chaos Mesh's daemon; through a node's
			// failure the controller is the test process anyway.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&appsv1.Deployment{
			ObjectMeta: meta("chaos-controller-manager"),
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: spec},
		},
		&appsv1.DaemonSet{
			ObjectMeta: meta("chaos-daemon"),
			Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: spec},
		},
	} {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the Chaos Mesh stand-in's %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// waitEstablished waits, for at most a minute, until the API server serves
// every named CRD.
func waitEstablished(ctx context.Context, c client.Client, names []string) error {
	var pending string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: n}, crd); err != nil {
				pending = n + ": " + err.Error()
				return false, nil
			}
			established := false
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				pending = n
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the Chaos Mesh CRDs to be served (pending %s): %w", pending, err)
	}
	return nil
}
