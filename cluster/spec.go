// Package cluster manages the lab's k3d cluster through the k3d Go library:
// it builds and validates the k3d configuration, creates the cluster (and
// removes whatever a failed creation left behind, since k3d's rollback lives in
// its CLI), waits for the nodes, writes the kubeconfig, deletes the cluster and
// stops or starts single nodes. Docker is reached only from this package.
package cluster

import (
	"context"
	"fmt"
	"strconv"

	k3dconfig "github.com/k3d-io/k3d/v5/pkg/config"
	"github.com/k3d-io/k3d/v5/pkg/config/types"
	"github.com/k3d-io/k3d/v5/pkg/config/v1alpha5"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
)

// Labels that mark every Docker object lab creates, so that a cluster lab did
// not create is recognised and never touched by accident.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "lab"
)

// Spec is what the lab asks for: a k3d cluster of Servers + Agents nodes.
type Spec struct {
	Name    string
	Servers int
	Agents  int
	// Image is the k3s node image; LoadBalancerImage and ToolsImage are k3d's
	// helper images. All are pinned by the caller.
	Image             string
	LoadBalancerImage string
	ToolsImage        string
	APIHost           string
	APIPort           int
	IngressHost       string
	IngressPort       int
	// ServerArgs are extra k3s arguments for the server nodes.
	ServerArgs []string
}

// Images returns every image the cluster needs, node image first.
func (s Spec) Images() []string {
	return []string{s.Image, s.LoadBalancerImage, s.ToolsImage}
}

// simpleConfig renders the spec as a k3d v1alpha5 Simple config, the format of
// a k3d config file.
func (s Spec) simpleConfig() v1alpha5.SimpleConfig {
	return v1alpha5.SimpleConfig{
		TypeMeta:   types.TypeMeta{APIVersion: v1alpha5.ApiVersion, Kind: "Simple"},
		ObjectMeta: types.ObjectMeta{Name: s.Name},
		Servers:    s.Servers,
		Agents:     s.Agents,
		Image:      s.Image,
		ExposeAPI: v1alpha5.SimpleExposureOpts{
			HostIP:   s.APIHost,
			HostPort: strconv.Itoa(s.APIPort),
		},
		Ports: []v1alpha5.PortWithNodeFilters{{
			Port:        fmt.Sprintf("%s:%d:80", s.IngressHost, s.IngressPort),
			NodeFilters: []string{"loadbalancer"},
		}},
		Options: v1alpha5.SimpleConfigOptions{
			K3dOptions: v1alpha5.SimpleConfigOptionsK3d{
				Wait: true,
			},
			K3sOptions: v1alpha5.SimpleConfigOptionsK3s{
				ExtraArgs: serverArgs(s.ServerArgs),
			},
			KubeconfigOptions: v1alpha5.SimpleConfigOptionsKubeconfig{
				UpdateDefaultKubeconfig: false,
				SwitchCurrentContext:    false,
			},
			Runtime: v1alpha5.SimpleConfigOptionsRuntime{
				Labels: []v1alpha5.LabelWithNodeFilters{{
					Label:       ManagedByLabel + "=" + ManagedByValue,
					NodeFilters: []string{"all"},
				}},
			},
		},
	}
}

func serverArgs(args []string) []v1alpha5.K3sArgWithNodeFilters {
	out := make([]v1alpha5.K3sArgWithNodeFilters, 0, len(args))
	for _, a := range args {
		out = append(out, v1alpha5.K3sArgWithNodeFilters{Arg: a, NodeFilters: []string{"server:*"}})
	}
	return out
}

// clusterConfig turns the spec into a k3d cluster configuration through k3d's
// own transformation, processing and validation, exactly as `k3d cluster
// create --config` would. None of these steps needs a running Docker daemon.
func (s Spec) clusterConfig(ctx context.Context, rt runtimes.Runtime) (*v1alpha5.ClusterConfig, error) {
	simple := s.simpleConfig()
	if err := k3dconfig.ProcessSimpleConfig(&simple); err != nil {
		return nil, fmt.Errorf("process k3d configuration: %w", err)
	}
	cc, err := k3dconfig.TransformSimpleToClusterConfig(ctx, rt, simple, "")
	if err != nil {
		return nil, fmt.Errorf("build k3d cluster configuration: %w", err)
	}
	cc, err = k3dconfig.ProcessClusterConfig(*cc)
	if err != nil {
		return nil, fmt.Errorf("process k3d cluster configuration: %w", err)
	}
	if err := k3dconfig.ValidateClusterConfig(ctx, rt, *cc); err != nil {
		return nil, fmt.Errorf("invalid k3d cluster configuration: %w", err)
	}
	// The load balancer image is otherwise taken from K3D_IMAGE_LOADBALANCER
	// or k3d's build-time version; pin it to what the spec says.
	if lb := cc.ServerLoadBalancer; lb != nil && lb.Node != nil && s.LoadBalancerImage != "" {
		lb.Image = s.LoadBalancerImage
	}
	// Wait for the servers to log that they are up; lab then waits for
	// every node to be Ready through the Kubernetes API.
	cc.ClusterCreateOpts.WaitForServer = true
	cc.ClusterCreateOpts.GlobalLabels = mergeLabels(cc.ClusterCreateOpts.GlobalLabels, map[string]string{ManagedByLabel: ManagedByValue})
	return cc, nil
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
