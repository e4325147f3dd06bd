package lab

import (
	"context"

	"github.com/jewelry-shop/lab/lab/internal/kube"
)

// Readiness is the stack's readiness, check by check, as its probe reads it
// through the Kubernetes API, the Sentinels and the ingress.
type Readiness = kube.Readiness

// Check is one fact of the stack's readiness.
type Check = kube.Check

// StackProbe reads the readiness of the stack in the cluster a kubeconfig
// points at.
type StackProbe interface {
	Check(ctx context.Context, kubeconfig []byte) (Readiness, error)
}

// NodeStopper stops and starts one node of the cluster, as a machine failure
// and its repair would; *cluster.Manager does it to k3d node containers.
type NodeStopper interface {
	StopNode(ctx context.Context, cluster, node string) error
	StartNode(ctx context.Context, cluster, node string) error
}

// defaultStackTargets say where the jewelry-shop chart puts its components.
func defaultStackTargets(ingressURL string) kube.StackTargets {
	return kube.StackTargets{
		Namespace:      StackNamespace,
		PostgresLabels: map[string]string{"application": "spilo", "cluster-name": "jewelry-shop-db"},
		PostgresName:   "jewelry-shop-db",
		RedisLabels:    map[string]string{"app.kubernetes.io/instance": StackRelease, "app.kubernetes.io/component": "redis"},
		SentinelName:   "sentinel",
		MasterName:     "mymaster",
		IngressURL:     ingressURL,
	}
}
