package kube

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// PostgresWithoutOperator says, when the postgres-operator's postgresql
// resource of the cluster is absent (or the cluster does not serve the
// kind at all), where the primary Service leads instead, in words for the
// report; "" when the resource exists. Such a PostgreSQL has no primary pod
// to fail or partition: its failover cannot be validated there.
func PostgresWithoutOperator(ctx context.Context, dyn dynamic.Interface, kube kubernetes.Interface, namespace, name string) (string, error) {
	_, err := dyn.Resource(postgresqlGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		return "", nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("read postgresql %s/%s: %w", namespace, name, err)
	}
	ready, err := serviceEndpoints(ctx, kube, namespace, name)
	where := "no ready endpoint"
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("the postgres-operator's postgresql resource %s is absent in %s, and so is the Service %s", name, namespace, name), nil
	case err != nil:
		return "", err
	case len(ready) > 0:
		where = strings.Join(ready, ", ")
	}
	return fmt.Sprintf("the postgres-operator's postgresql resource %s is absent in %s: PostgreSQL there is not the operator's (a stand-in?), the Service %s leads to %s", name, namespace, name, where), nil
}

// serviceEndpoints lists the ready addresses (ip:port) of a Service, from
// its EndpointSlices.
func serviceEndpoints(ctx context.Context, kube kubernetes.Interface, namespace, name string) ([]string, error) {
	if _, err := kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("read Service %s/%s: %w", namespace, name, err)
	}
	slices, err := kube.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
	if err != nil {
		return nil, fmt.Errorf("read the endpoints of Service %s/%s: %w", namespace, name, err)
	}
	seen := map[string]bool{}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				for _, p := range s.Ports {
					if p.Port != nil {
						seen[net.JoinHostPort(a, strconv.Itoa(int(*p.Port)))] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

// FactKubelet is the fact of ClusterFacts that lists the nodes' kubelet
// versions.
const FactKubelet = "kubelet"

// StandInAnnotation is the annotation of a Deployment that stands in for
// an upstream component (a test's): its value says for what and how, and
// the report's environment names it.
const StandInAnnotation = "lab.jewelry-shop.dev/stand-in"

// ClusterFacts reads what the report's environment says of the cluster as
// it runs, beside the versions lab installs: its nodes' kubelet, container
// runtime and OS, the image of Chaos Mesh's controller (and what it stands
// in for, when it is a stand-in), and the images the stack's pods run.
func ClusterFacts(ctx context.Context, kube kubernetes.Interface, chaosNamespace, stackNamespace string) (map[string]string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	kinds := map[string]int{}
	kubelets := map[string]bool{}
	ready := 0
	for _, n := range nodes.Items {
		i := n.Status.NodeInfo
		kinds[fmt.Sprintf("kubelet %s, %s, %s", i.KubeletVersion, i.ContainerRuntimeVersion, i.OSImage)]++
		kubelets[i.KubeletVersion] = true
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d × %s", n, k))
	}
	sort.Strings(parts)
	facts := map[string]string{
		"nodes":     fmt.Sprintf("%d (%d Ready): %s", len(nodes.Items), ready, strings.Join(parts, "; ")),
		FactKubelet: strings.Join(slices.Sorted(maps.Keys(kubelets)), ", "),
	}
	facts["chaos mesh controller"] = "absent"
	d, err := kube.AppsV1().Deployments(chaosNamespace).Get(ctx, "chaos-controller-manager", metav1.GetOptions{})
	switch {
	case err == nil:
		var images []string
		for _, c := range d.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		facts["chaos mesh controller"] = strings.Join(images, ", ")
		if why := d.Annotations[StandInAnnotation]; why != "" {
			facts["chaos mesh controller"] += " (stand-in: " + why + ")"
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read Chaos Mesh's controller: %w", err)
	}
	pods, err := kube.CoreV1().Pods(stackNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the stack's pods: %w", err)
	}
	images := map[string]bool{}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			images[c.Image] = true
		}
	}
	if len(images) > 0 {
		facts["stack images"] = strings.Join(slices.Sorted(maps.Keys(images)), ", ")
	}
	return facts, nil
}
