package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/cluster"
	"github.com/jewelry-shop/lab/lab/internal/kube"
)

// Status describes the lab as it is now.
type Status struct {
	Cluster string
	Exists  bool
	// Managed is false for a cluster of the lab's name that lab did not create.
	Managed bool
	// Containers are the node containers as Docker sees them.
	Containers []cluster.Node
	// Kubeconfig is the lab's kubeconfig file, empty when it is missing.
	Kubeconfig string
	// Nodes are the Kubernetes nodes; NodesError says why they could not be read.
	Nodes      []cluster.NodeStatus
	NodesError string
	APIServer  string
	IngressURL string
	// Installed lists the Helm releases deployed in the cluster.
	Installed []string
	// Stack is the readiness of the installed stack; empty when it is not
	// installed or the API is not reachable.
	Stack Readiness
	// StackError says why the installed releases could not be read.
	StackError string
	// NotInstalled are the upstream charts an offline stack (stack.offline)
	// leaves out, each with what that means.
	NotInstalled []string
	// Problem says why `lab up` would not reuse the cluster as it is, and
	// Fix how to recover; both empty for a usable cluster.
	Problem, Fix string
}

// Status reads the state of the lab's cluster without changing anything.
func (l *Lab) Status(ctx context.Context) (*Status, error) {
	c := l.cfg.Cluster
	up := l.upURLs()
	st := &Status{Cluster: c.Name, APIServer: up.APIServer, IngressURL: up.IngressURL}
	info, err := l.clusters.Get(ctx, c.Name)
	if errors.Is(err, cluster.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.Exists, st.Managed, st.Containers = true, info.Managed, info.Nodes
	var broken *BrokenClusterError
	if errors.As(l.reusable(info), &broken) {
		st.Problem, st.Fix = broken.Problem, broken.Fix
	}
	path, err := l.cfg.KubeconfigPath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		st.Kubeconfig = path
	}
	kubeconfig, err := l.clusters.Kubeconfig(ctx, c.Name)
	if err != nil {
		st.NodesError = fmt.Sprintf("no kubeconfig: %v", err)
		return st, nil
	}
	nodes, err := l.nodes.Statuses(ctx, kubeconfig)
	if err != nil {
		st.NodesError = err.Error()
		return st, nil
	}
	st.Nodes = nodes
	st.Installed, err = installedReleases(ctx, kubeconfig)
	if err != nil {
		st.StackError = err.Error()
		return st, nil
	}
	if len(st.Installed) > 0 && l.cfg.Stack.Offline {
		st.NotInstalled = charts.NotInstalledOffline()
	}
	if len(st.Installed) > 0 {
		if rd, err := l.probe.Check(ctx, kubeconfig); err == nil {
			st.Stack = rd
		}
	}
	return st, nil
}

// installedReleases lists the deployed Helm releases from the Secrets Helm
// keeps them in, as "name (namespace, revision N)".
func installedReleases(ctx context.Context, kubeconfig []byte) ([]string, error) {
	_, cs, err := kube.Clients(kubeconfig)
	if err != nil {
		return nil, err
	}
	secrets, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,status=deployed"})
	if err != nil {
		return nil, fmt.Errorf("list Helm releases: %w", err)
	}
	var out []string
	for _, s := range secrets.Items {
		out = append(out, fmt.Sprintf("%s (%s, revision %s)", s.Labels["name"], s.Namespace, s.Labels["version"]))
	}
	sort.Strings(out)
	return out, nil
}

// upURLs returns a result naming the cluster and the addresses it publishes.
func (l *Lab) upURLs() *UpResult {
	c := l.cfg.Cluster
	return &UpResult{
		Cluster:    c.Name,
		APIServer:  "https://" + net.JoinHostPort(c.APIHost, strconv.Itoa(c.APIPort)),
		IngressURL: "http://" + net.JoinHostPort(c.IngressHost, strconv.Itoa(c.IngressPort)),
	}
}
