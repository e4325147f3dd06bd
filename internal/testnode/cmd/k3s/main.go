// Command k3s is lab's test-only stand-in for the k3s binary of a k3d node
// image (/bin/k3s in lab-test.invalid/k3s-standin, built by
// internal/testnode). k3d runs it exactly as it runs rancher/k3s: `k3s
// server` or `k3s agent` with k3d's and lab's flags and K3S_* variables,
// behind k3d's entrypoint script. It is not k3s; it runs the upstream parts
// k3s bundles, the real binaries in the image:
//
//   - the server: etcd, kube-apiserver, kube-controller-manager and
//     kube-scheduler;
//   - every node, the server included: containerd (Debian's 1.6, socket at
//     /run/k3s/containerd/containerd.sock, where k3d's image import finds
//     it), a real kubelet and kube-proxy. Pods run in containers (runc,
//     Debian's CNI bridge on the node's pod range), with real probes, logs
//     and exec through the API, Services through kube-proxy, and plain
//     routes between the nodes' pod ranges on their Docker network.
//
// Nodes join by TLS bootstrap, as kubeadm's do (bootstrap.go): the kubelet
// authenticates with a bootstrap token derived from the cluster token only
// to ask for its client certificate, and then runs as system:node:<name>
// under the Node authorizer and NodeRestriction; its serving certificate
// and an agent's kube-proxy certificate (system:kube-proxy) come through
// CertificateSigningRequests that the server approves (approve.go). The
// kubelet accepts the API server by its client certificate and other
// clients by their tokens, asking the API (webhook) as system:node:<name>.
//
// The server deploys k3s's bundled add-ons as k3s does (see addons.go): it
// writes their manifests into /var/lib/rancher/k3s/server/manifests (k3d
// rewrites coredns.yaml there with NodeHosts) and applies every file of that
// directory (server-side apply), again whenever one changes: CoreDNS
// (kube-dns at 10.43.0.10), metrics-server (v1beta1.metrics.k8s.io, scraping
// the kubelets over TLS) and local-path-provisioner (the default
// StorageClass local-path, volumes under /var/lib/rancher/k3s/storage),
// unless --disable names them. Their images are test-only ones of the node
// image (static binaries; lab-test.invalid/...), imported at every start.
//
// Not there (yet): servicelb, traefik, network policies, k3s's Addon
// objects and HelmChart controller. Pod traffic that leaves its node is
// masqueraded to the node's address.
//
// Every component's output goes to the container's log prefixed with its
// name; the stand-in itself logs like k3s (level=info msg=…), including the
// lines k3d waits for, printed only once they are true. On SIGTERM it stops
// the components in reverse order (kube-proxy, the kubelet and containerd
// first, etcd last); the pods' processes end with the container.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	out := &lineWriter{w: os.Stdout}
	log := newLogger(out)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := parseArgs(args, os.Getenv)
	if err == nil {
		log.Info("starting lab's k3s stand-in", "role", c.role, "args", args)
		if c.role == server {
			err = runServer(ctx, log, out, c)
		} else {
			err = runAgent(ctx, log, out, c)
		}
	}
	if err != nil && ctx.Err() == nil {
		log.Log(ctx, levelFatal, err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}
