package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/jewelry-shop/lab/cluster"
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
	// Installed lists what is installed into the cluster. The stack's
	// installation arrives with its own issue; until then it stays empty.
	Installed []string
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
	return st, nil
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
