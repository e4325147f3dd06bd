package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Where the stand-in keeps its state, as k3s does. It lives in a volume of
// the container, so it survives `docker stop` and `docker start`.
const (
	dataDir        = "/var/lib/rancher/k3s"
	kubeconfigPath = "/etc/rancher/k3s/k3s.yaml"
)

// The cluster's address ranges: k3s's defaults.
const (
	clusterCIDR   = "10.42.0.0/16"
	serviceCIDR   = "10.43.0.0/16"
	apiServiceIP  = "10.43.0.1"
	clusterDNS    = "10.43.0.10"
	clusterDomain = "cluster.local"
)

// kubeconfig returns a kubeconfig whose cluster, user and context are all
// named "default", as k3s writes it and as k3d expects to read it.
func kubeconfig(server string, caPEM []byte, insecure bool, auth *clientcmdapi.AuthInfo) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM, InsecureSkipTLSVerify: insecure}
	cfg.AuthInfos["default"] = auth
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	cfg.CurrentContext = "default"
	return cfg
}

// writeKubeconfig writes cfg to path (creating its directory) with mode.
func writeKubeconfig(cfg *clientcmdapi.Config, path string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

func clientFor(cfg *clientcmdapi.Config) (kubernetes.Interface, error) {
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("make the API client configuration: %w", err)
	}
	rc.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("make the API client: %w", err)
	}
	return cs, nil
}

// kubeletKubeconfig is the kubelet's own credential, which it writes once
// it has its client certificate (system:node:<name>), as in k3s.
const kubeletKubeconfig = agentDir + "/kubelet.kubeconfig"

// nodeCreds are the credentials of a node's components.
type nodeCreds struct {
	// bootstrapKubeconfig holds the bootstrap token and the cluster CA:
	// the kubelet asks for its client certificate with it.
	bootstrapKubeconfig string
	kubeProxyKubeconfig string // system:kube-proxy
	// clientCA verifies the API server's kubelet client certificate.
	clientCA string
}

// runKubelet starts what runs the node's pods: containerd, the kubelet (a
// real one: pods run in containers) and kube-proxy. The kubelet gets its
// client certificate by TLS bootstrap and registers its Node itself; it
// accepts the API server by its client certificate, signed by the CA in
// clientCA, and asks for its serving certificate, which the server approves
// (approveCSRs). cs reads every Node (the routes between the nodes): the
// admin on the server, kube-proxy's identity on an agent. It returns once
// the kubelet has its serving certificate.
func runKubelet(ctx context.Context, log *slog.Logger, g *group, cs kubernetes.Interface, c config, name string, ips []net.IP, creds nodeCreds) error {
	labels := nodeLabels(c)
	s := nodeSetup{
		name: name, ip: ips[0].String(),
		kubeconfig: kubeletKubeconfig, bootstrapKubeconfig: creds.bootstrapKubeconfig,
		kubeProxyKubeconfig: creds.kubeProxyKubeconfig, clientCA: creds.clientCA,
		labels: labels, taints: c.nodeTaints,
		pauseImage:  c.pauseImage,
		kubeletArgs: c.kubeletArgs, kubeProxyArgs: c.kubeProxyArgs,
	}
	if err := startKubelet(ctx, log, g, s); err != nil {
		return err
	}
	kubelet, err := waitKubeletCredential(ctx, g)
	if err != nil {
		return err
	}
	log.Info("the kubelet has its client certificate", "user", "system:node:"+name)
	cidr, err := waitPodCIDR(ctx, g, kubelet, name)
	if err != nil {
		return err
	}
	log.Info("registered node", "node", name, "podCIDR", cidr)
	// The labels again, for a node registered before this start: the
	// kubelet sets its --node-labels only when it registers. A server's
	// admin adds the control-plane roles, which NodeRestriction keeps
	// from the kubelet (as k3s's server sets them).
	labeller := kubelet
	if c.role == server {
		labeller = cs
		labels = append(labels, "node-role.kubernetes.io/control-plane=true", "node-role.kubernetes.io/master=true")
	}
	if err := labelNode(ctx, labeller, name, labels); err != nil {
		return err
	}
	s.podCIDR = cidr
	if err := writeCNIConfig(s); err != nil {
		return err
	}
	if err := g.start("kube-proxy", kubeProxyArgs(s), os.Environ()); err != nil {
		return err
	}
	go syncRoutes(ctx, log, cs, name)
	return waitServingCert(ctx, g)
}

// nodeLabels are the labels a k3s node's kubelet registers with (the
// kubelet adds its host name, OS and architecture) and the --node-label
// values.
func nodeLabels(c config) []string {
	return append([]string{"node.kubernetes.io/instance-type=k3s"}, c.nodeLabels...)
}

// labelNode sets labels (key=value) on the node.
func labelNode(ctx context.Context, cs kubernetes.Interface, name string, labels []string) error {
	m := map[string]string{}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": m}})
	if err != nil {
		return fmt.Errorf("label node %s: %w", name, err)
	}
	if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label node %s: %w", name, err)
	}
	return nil
}

// waitKubeletCredential waits until the kubelet has written its kubeconfig
// (once its client certificate was issued; at once after a restart) and
// returns a client with it.
func waitKubeletCredential(ctx context.Context, g *group) (kubernetes.Interface, error) {
	var cs kubernetes.Interface
	err := poll(ctx, g, 500*time.Millisecond, func(context.Context) bool {
		cfg, err := clientcmd.LoadFromFile(kubeletKubeconfig)
		if err != nil {
			return false
		}
		cs, err = clientFor(cfg)
		return err == nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for the kubelet's client certificate (TLS bootstrap): %w", err)
	}
	return cs, nil
}

// waitServingCert waits until the kubelet has its serving certificate,
// without which the API server cannot reach it (logs, exec).
func waitServingCert(ctx context.Context, g *group) error {
	path := kubeletCertDir + "/kubelet-server-current.pem"
	err := poll(ctx, g, 500*time.Millisecond, func(context.Context) bool {
		_, err := os.Stat(path)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("wait for the kubelet's serving certificate %s: %w", path, err)
	}
	return nil
}

// parseTaint reads a taint as --node-taint takes it: key=value:Effect or
// key:Effect.
func parseTaint(s string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		return corev1.Taint{}, fmt.Errorf("taint %q: want key=value:Effect", s)
	}
	t := corev1.Taint{Effect: corev1.TaintEffect(effect)}
	t.Key, t.Value, _ = strings.Cut(kv, "=")
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return corev1.Taint{}, fmt.Errorf("taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", s)
	}
	if t.Key == "" {
		return corev1.Taint{}, fmt.Errorf("taint %q: empty key", s)
	}
	return t, nil
}

// poll calls cond every interval until it returns true, ctx ends or a
// component of g exits.
func poll(ctx context.Context, g *group, interval time.Duration, cond func(context.Context) bool) error {
	return wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
		if err := g.failed(); err != nil {
			return false, err
		}
		return cond(ctx), nil
	})
}

// waitPodCIDR waits until kube-controller-manager gave the node its pod
// range, from which the node's CNI bridge hands out its pods' IPs.
func waitPodCIDR(ctx context.Context, g *group, cs kubernetes.Interface, name string) (string, error) {
	var cidr string
	err := poll(ctx, g, 500*time.Millisecond, func(ctx context.Context) bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			cidr = n.Spec.PodCIDR
		}
		return cidr != ""
	})
	if err != nil {
		return "", fmt.Errorf("wait for the pod CIDR of node %s: %w", name, err)
	}
	return cidr, nil
}

// waitNodeReady waits until the node's Ready condition is True, as posted
// after since (by the kubelet started then, not a stale one from before a
// restart of the container).
func waitNodeReady(ctx context.Context, g *group, cs kubernetes.Interface, name string, since time.Time) error {
	since = since.Truncate(time.Second) // the API keeps whole seconds
	err := poll(ctx, g, 500*time.Millisecond, func(ctx context.Context) bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(since)
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("wait for node %s to be Ready: %w", name, err)
	}
	return nil
}

// waitAPI waits until the API server answers /readyz with ok.
func waitAPI(ctx context.Context, g *group, cs kubernetes.Interface) error {
	err := poll(ctx, g, 500*time.Millisecond, func(ctx context.Context) bool {
		b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && strings.TrimSpace(string(b)) == "ok"
	})
	if err != nil {
		return fmt.Errorf("wait for the API server: %w", err)
	}
	return nil
}

// nodeIPs returns the container's non-loopback IPv4 addresses, the first of
// them (eth0 on a Docker network) being the node's InternalIP.
func nodeIPs() ([]net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var ips []net.IP
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list the addresses of %s: %w", iface.Name, err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ips = append(ips, ipn.IP.To4())
			}
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("the container has no IPv4 address besides loopback")
	}
	return ips, nil
}
