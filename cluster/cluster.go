package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/k3d-io/k3d/v5/pkg/client"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNotFound is returned when the named cluster does not exist.
var ErrNotFound = errors.New("cluster not found")

// ErrNotManaged is returned when a cluster exists but lab did not create it,
// so lab refuses to change it.
var ErrNotManaged = errors.New("cluster was not created by lab")

// cleanupTimeout bounds the removal of a half-created cluster; it runs even
// after the caller's context was cancelled (Ctrl-C).
const cleanupTimeout = 2 * time.Minute

// Manager runs the k3d lifecycle on the local Docker daemon.
type Manager struct {
	rt  runtimes.Runtime
	log *slog.Logger
}

// New returns a Manager for the Docker runtime. A nil logger discards.
func New(log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{rt: runtimes.Docker, log: log}
}

// Validate builds the k3d configuration of spec through k3d's own
// processing and validation without creating anything.
func (m *Manager) Validate(ctx context.Context, spec Spec) error {
	_, err := spec.clusterConfig(ctx, m.rt)
	return err
}

// CreateOptions bound a creation and say what to do when it fails.
type CreateOptions struct {
	// Timeout bounds the creation of the containers and the wait for the
	// servers to log that they are up.
	Timeout time.Duration
	// KeepOnFailure keeps what a failed creation made, to look into it;
	// by default it is removed. A cancelled creation is always removed.
	KeepOnFailure bool
}

// Create creates the cluster and starts its nodes. When anything fails, or
// ctx is cancelled, it removes every container, network and volume the
// attempt created before returning the error, unless opts.KeepOnFailure
// (and ctx was not cancelled).
func (m *Manager) Create(ctx context.Context, spec Spec, opts CreateOptions) (err error) {
	cc, err := spec.clusterConfig(ctx, m.rt)
	if err != nil {
		return err
	}
	timeout := opts.Timeout
	cc.ClusterCreateOpts.Timeout = timeout
	defer func() {
		if err == nil || (opts.KeepOnFailure && ctx.Err() == nil) {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		m.log.Info("creation failed, removing what was created", "cluster", spec.Name)
		if cerr := m.removeResidue(cctx, spec.Name); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove half-created cluster %s (remove its containers, network and volumes with `lab down`): %w", spec.Name, cerr))
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.ClusterRun(rctx, m.rt, cc); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("create cluster %s: %w", spec.Name, ctx.Err())
		}
		if rctx.Err() != nil {
			return fmt.Errorf("create cluster %s: not up within %s (raise cluster.createTimeout): %w", spec.Name, timeout, err)
		}
		return fmt.Errorf("create cluster %s: %w", spec.Name, err)
	}
	return nil
}

// Node is one node container of a cluster.
type Node struct {
	Name    string
	Role    string // server, agent or loadbalancer
	Running bool
	Status  string // the container state as Docker says it, e.g. "running", "exited"
	// Image is the container's image reference; TestImage is the value of
	// its TestImageLabel, empty for every image but lab's test fixtures.
	Image, TestImage string
}

// TestImageLabel marks lab's test-only images (internal/testnode's
// ImageLabel): its value is the image's kind (node, loadbalancer, tools). A
// container carries the labels of its image.
const TestImageLabel = "org.jewelry-shop.lab.test-image"

// Info describes an existing cluster as the container runtime sees it.
type Info struct {
	Name string
	// Managed is set when lab created every node container (they carry
	// ManagedByLabel); Foreign names those that do not.
	Managed bool
	Foreign []string
	Nodes   []Node
	Network string
}

// NodesByRole returns the nodes of one role, sorted by name.
func (i Info) NodesByRole(role string) []Node {
	var out []Node
	for _, n := range i.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// Get describes the named cluster, or returns ErrNotFound.
//
// It reads the node containers' own labels through Docker rather than k3d's
// node view: k3d keeps only the labels whose key starts with "k3d" in a
// node's RuntimeLabels, so lab's ownership label is not there.
func (m *Manager) Get(ctx context.Context, name string) (*Info, error) {
	c, err := m.docker(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))})
	if err != nil {
		return nil, fmt.Errorf("get cluster %s: list its containers: %w", name, err)
	}
	info := &Info{Name: name}
	for _, ct := range cs {
		role := ct.Labels[k3d.LabelRole]
		if role != string(k3d.ServerRole) && role != string(k3d.AgentRole) && role != string(k3d.LoadBalancerRole) {
			continue // the tools node and registries are not part of the cluster proper
		}
		if info.Network == "" {
			info.Network = ct.Labels[k3d.LabelNetwork]
		}
		n := Node{Name: containerName(ct), Role: role, Running: ct.State == "running", Status: ct.State, Image: ct.Image, TestImage: ct.Labels[TestImageLabel]}
		info.Nodes = append(info.Nodes, n)
		if ct.Labels[ManagedByLabel] != ManagedByValue {
			info.Foreign = append(info.Foreign, n.Name)
		}
	}
	if len(info.Nodes) == 0 {
		return nil, fmt.Errorf("get cluster %s: %w", name, ErrNotFound)
	}
	info.Managed = len(info.Foreign) == 0
	slices.SortFunc(info.Nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return info, nil
}

// Delete removes the named cluster and everything k3d created for it. It
// reports whether anything existed; deleting a cluster that does not exist is
// not an error. A cluster lab did not create is refused with ErrNotManaged
// unless force is set.
func (m *Manager) Delete(ctx context.Context, name string, force bool) (existed bool, err error) {
	info, err := m.Get(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return false, err
	case !info.Managed && !force:
		return true, fmt.Errorf("delete cluster %s: %w", name, ErrNotManaged)
	default:
		existed = true
		if err := client.ClusterDelete(ctx, m.rt, &k3d.Cluster{Name: name}, k3d.ClusterDeleteOpts{SkipRegistryCheck: true}); err != nil {
			m.log.Warn("k3d could not delete every node, removing them directly", "cluster", name, "err", err)
		}
	}
	// k3d leaves the network and volumes behind when no node exists (a
	// half-created cluster): remove whatever is left.
	r, err := m.Residue(ctx, name)
	if err != nil {
		return existed, err
	}
	if r.Empty() {
		return existed, nil
	}
	if err := m.removeResidue(ctx, name); err != nil {
		return true, fmt.Errorf("delete cluster %s: %w", name, err)
	}
	return true, nil
}

// Kubeconfig returns a kubeconfig for the named cluster, pointing at the API
// address published on the host.
func (m *Manager) Kubeconfig(ctx context.Context, name string) ([]byte, error) {
	kc, err := client.KubeconfigGet(ctx, m.rt, &k3d.Cluster{Name: name})
	if err != nil {
		return nil, fmt.Errorf("get kubeconfig of cluster %s: %w", name, err)
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig of cluster %s: %w", name, err)
	}
	return b, nil
}

// MergeIntoDefaultKubeconfig adds the cluster to ~/.kube/config (or
// $KUBECONFIG) without switching the current context.
func (m *Manager) MergeIntoDefaultKubeconfig(ctx context.Context, name string) (string, error) {
	c, err := client.ClusterGet(ctx, m.rt, &k3d.Cluster{Name: name})
	if err != nil {
		return "", fmt.Errorf("get cluster %s: %w", name, err)
	}
	path, err := client.KubeconfigGetWrite(ctx, m.rt, c, "", &client.WriteKubeConfigOptions{UpdateExisting: true, OverwriteExisting: true})
	if err != nil {
		return "", fmt.Errorf("merge cluster %s into the default kubeconfig: %w", name, err)
	}
	return path, nil
}

// StopNode stops one node container of the cluster, as a machine failure
// would. It refuses clusters lab did not create; which node to stop is the
// caller's choice (node failure picks an agent).
func (m *Manager) StopNode(ctx context.Context, clusterName, node string) error {
	n, err := m.node(ctx, clusterName, node)
	if err != nil {
		return err
	}
	if err := m.rt.StopNode(ctx, n); err != nil {
		return fmt.Errorf("stop node %s: %w", node, err)
	}
	return nil
}

// StartNode starts a stopped node container again.
func (m *Manager) StartNode(ctx context.Context, clusterName, node string) error {
	n, err := m.node(ctx, clusterName, node)
	if err != nil {
		return err
	}
	if n.State.Running {
		return nil
	}
	if err := m.rt.StartNode(ctx, n); err != nil {
		return fmt.Errorf("start node %s: %w", node, err)
	}
	return nil
}

func (m *Manager) node(ctx context.Context, clusterName, node string) (*k3d.Node, error) {
	info, err := m.Get(ctx, clusterName)
	if err != nil {
		return nil, err
	}
	if !info.Managed {
		return nil, fmt.Errorf("node %s: %w", node, ErrNotManaged)
	}
	var names []string
	for _, n := range info.Nodes {
		if n.Role == string(k3d.LoadBalancerRole) {
			continue
		}
		names = append(names, n.Name)
		if n.Name == node {
			k, err := m.rt.GetNode(ctx, &k3d.Node{Name: node})
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", node, err)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("cluster %s has no node %q; its nodes are %v", clusterName, node, names)
}
