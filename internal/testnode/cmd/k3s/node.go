package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
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

// runKubelet registers the node (or updates a registered one) and starts
// what runs its pods: containerd, the kubelet (a real one: pods run in
// containers) and kube-proxy. The kubelet authenticates with kubeconfigFile
// and accepts the API server by its client certificate, signed by the CA
// in clientCA; its serving certificate comes from the cluster CA.
func runKubelet(ctx context.Context, log *slog.Logger, g *group, cs kubernetes.Interface, c config, name string, ips []net.IP, kubeconfigFile, clientCA string) error {
	n, err := newNode(c, name)
	if err != nil {
		return err
	}
	if err := register(ctx, cs, n); err != nil {
		return err
	}
	log.Info("registered node", "node", name)
	cidr, err := waitPodCIDR(ctx, g, cs, name)
	if err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read the host name: %w", err)
	}
	dnsNames := []string{name}
	if host != name {
		dnsNames = append(dnsNames, host)
	}
	crt, key, err := kubeletServingCert(ctx, cs, name, dnsNames, ips)
	if err != nil {
		return err
	}
	err = startNodeComponents(ctx, log, g, nodeSetup{
		name: name, ip: ips[0].String(), podCIDR: cidr,
		kubeconfig: kubeconfigFile, clientCA: clientCA,
		servingCert: crt, servingKey: key,
		pauseImage:  c.pauseImage,
		kubeletArgs: c.kubeletArgs, kubeProxyArgs: c.kubeProxyArgs,
	})
	if err != nil {
		return err
	}
	go syncRoutes(ctx, log, cs, name)
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

// newNode returns the Node this node registers: the labels the kubelet and
// k3s put on a k3s node (the control-plane roles on a server), the
// --node-label and --node-taint values, and the container's CPUs and memory
// as its capacity.
func newNode(c config, name string) (*corev1.Node, error) {
	labels := map[string]string{
		"kubernetes.io/hostname":           name,
		"kubernetes.io/os":                 runtime.GOOS,
		"kubernetes.io/arch":               runtime.GOARCH,
		"beta.kubernetes.io/os":            runtime.GOOS,
		"beta.kubernetes.io/arch":          runtime.GOARCH,
		"node.kubernetes.io/instance-type": "k3s",
	}
	if c.role == server {
		labels["node-role.kubernetes.io/control-plane"] = "true"
		labels["node-role.kubernetes.io/master"] = "true"
	}
	for _, kv := range c.nodeLabels {
		k, v, _ := strings.Cut(kv, "=")
		labels[k] = v
	}
	var taints []corev1.Taint
	for _, s := range c.nodeTaints {
		t, err := parseTaint(s)
		if err != nil {
			return nil, err
		}
		taints = append(taints, t)
	}
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: mem,
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status:     corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}, nil
}

// register creates the node, or, when it exists (a restarted container),
// sets its labels again. Taints are only set at creation, as the kubelet's
// --register-with-taints.
func register(ctx context.Context, cs kubernetes.Interface, n *corev1.Node) error {
	_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("register node %s: %w", n.Name, err)
		}
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range n.Labels {
			cur.Labels[k] = v
		}
		_, err = cs.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update registered node %s: %w", n.Name, err)
	}
	return nil
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

// memTotal reads the memory the kernel reports (/proc/meminfo MemTotal).
func memTotal() (resource.Quantity, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("read the memory size: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kib, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return resource.Quantity{}, fmt.Errorf("read the memory size: %w", err)
			}
			return *resource.NewQuantity(kib*1024, resource.BinarySI), nil
		}
	}
	return resource.Quantity{}, fmt.Errorf("read the memory size: no MemTotal in /proc/meminfo")
}
