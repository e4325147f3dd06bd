package charts

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// restGetter gives Helm a cluster from kubeconfig bytes (Helm's own getter
// reads files and flags) with a fixed default namespace. It implements
// genericclioptions.RESTClientGetter.
type restGetter struct {
	config    clientcmd.ClientConfig
	discovery discovery.CachedDiscoveryInterface
	mapper    meta.RESTMapper
}

// newRESTGetter returns a getter for the kubeconfig's current context.
func newRESTGetter(kubeconfig *clientcmdapi.Config, namespace string) (*restGetter, error) {
	cc := clientcmd.NewDefaultClientConfig(*kubeconfig, &clientcmd.ConfigOverrides{
		Context: clientcmdapi.Context{Namespace: namespace},
	})
	rc, err := restConfig(cc)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create a discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &restGetter{config: cc, discovery: cached, mapper: mapper}, nil
}

// restConfig reads the client configuration, with more room than
// client-go's default rate limit (5 QPS) for installing whole charts.
func restConfig(cc clientcmd.ClientConfig) (*rest.Config, error) {
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("read the kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = 50, 100
	return rc, nil
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return restConfig(g.config) }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.discovery, nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) { return g.mapper, nil }

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return g.config }
