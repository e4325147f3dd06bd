package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The agent's credentials: the server URL and the cluster token, at first
// without the server's CA (join), then with it (the kubelet and
// kube-proxy).
const (
	joinKubeconfig  = agentDir + "/join.kubeconfig"
	agentKubeconfig = agentDir + "/node.kubeconfig"
	agentClusterCA  = agentDir + "/server-ca.crt"
)

// runAgent runs a k3s agent: it waits for the server, registers its Node and
// runs containerd, the kubelet and kube-proxy. It logs "Successfully
// registered node" (k3d's ready message for agents) once its Node is Ready.
//
// The agent trusts the server's CA on first use (the stand-in's
// simplification): it reads the CA from the API with the cluster token,
// without verifying the server, and verifies the server with it from then
// on. A k3s agent checks the server CA against the hash in a K10… token;
// k3d's tokens are plain random strings.
func runAgent(ctx context.Context, log *slog.Logger, out *lineWriter, c config) error {
	name := c.nodeName
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("read the host name: %w", err)
		}
		name = host
	}
	u, err := url.Parse(c.serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("server URL %q: want https://host:port", c.serverURL)
	}
	ips, err := nodeIPs()
	if err != nil {
		return err
	}
	join := kubeconfig(c.serverURL, nil, true, &clientcmdapi.AuthInfo{Token: c.token})
	if err := writeKubeconfig(join, joinKubeconfig, 0o600); err != nil {
		return err
	}
	cs, err := clientFor(join)
	if err != nil {
		return err
	}

	g := newGroup(log, out)
	log.Info("waiting for the server", "url", c.serverURL)
	start := time.Now()
	if err := waitAPI(ctx, g, cs); err != nil {
		return err
	}
	log.Info("the server answers", "url", c.serverURL, "after", time.Since(start).Round(time.Millisecond))
	if err := waitClusterCA(ctx, g, cs, agentClusterCA); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(agentClusterCA)
	if err != nil {
		return fmt.Errorf("read the cluster CA: %w", err)
	}
	node := kubeconfig(c.serverURL, caPEM, false, &clientcmdapi.AuthInfo{Token: c.token})
	if err := writeKubeconfig(node, agentKubeconfig, 0o600); err != nil {
		return err
	}
	if cs, err = clientFor(node); err != nil {
		return err
	}
	started := time.Now()
	if err := runKubelet(ctx, log, g, cs, c, name, ips, agentKubeconfig, agentClusterCA); err != nil {
		g.stop()
		return err
	}
	if err := waitNodeReady(ctx, g, cs, name, started); err != nil {
		g.stop()
		return err
	}
	log.Info("Successfully registered node " + name)
	return g.wait(ctx)
}
