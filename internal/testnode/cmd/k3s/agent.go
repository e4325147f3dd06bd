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

// agentKubeconfig is the agent's credential for kwok: the server URL and
// the cluster token.
const agentKubeconfig = dataDir + "/agent/kwok.kubeconfig"

// runAgent runs a k3s agent: it waits for the server, registers its Node and
// runs kwok in place of the kubelet. It logs "Successfully registered node"
// (k3d's ready message for agents) once its Node exists and kwok runs.
//
// The agent does not verify the server's certificate (the stand-in's
// simplification): a k3s agent checks the server CA against the hash in a
// K10… token, and k3d's tokens are plain random strings.
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
	kc := kubeconfig(c.serverURL, nil, true, &clientcmdapi.AuthInfo{Token: c.token})
	if err := writeKubeconfig(kc, agentKubeconfig, 0o600); err != nil {
		return err
	}
	cs, err := clientFor(kc)
	if err != nil {
		return err
	}
	stages, err := writeKwokConfig()
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
	if err := runKubelet(ctx, log, g, cs, c, name, ips[0].String(), agentKubeconfig, stages); err != nil {
		return err
	}
	log.Info("Successfully registered node " + name)
	go func() {
		if err := waitNodeReady(ctx, g, cs, name); err == nil {
			log.Info("node is Ready", "node", name)
		}
	}()
	return g.wait(ctx)
}
