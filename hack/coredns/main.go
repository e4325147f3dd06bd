// Command coredns is CoreDNS (github.com/coredns/coredns, the version in
// go.mod) with only the plugins the test tiers use, in CoreDNS's own order
// (its plugin.cfg): cluster names from the Kubernetes API, a cache, health
// and readiness, and what k3s's bundled Corefile asks for besides (hosts for
// k3d's NodeHosts, forward to the node's resolver, reload, prometheus).
// Leaving out the cloud back ends (route53, azure, clouddns, etcd, ...) keeps
// the build to a fraction of the full binary's. hack/test-assets.sh builds it
// into the test assets; internal/realnode runs it on the test bridge as the
// cluster's DNS server, and the k3d node image carries it as the image of
// the k3s stand-in's CoreDNS add-on.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives are the plugins above in the order CoreDNS's plugin.cfg gives
// them: a server block runs its plugins in this order, whatever the order
// of the Corefile.
func directives() []string {
	return []string{"reload", "bind", "ready", "health", "prometheus", "errors", "log", "loadbalance", "cache", "hosts", "kubernetes", "loop", "forward"}
}

func main() {
	dnsserver.Directives = directives()
	coremain.Run()
}
