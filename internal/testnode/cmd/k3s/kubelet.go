package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jewelry-shop/lab/internal/cni"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Where a node's own components keep their state and configuration, as k3s
// does. /var/lib/rancher/k3s, /var/lib/kubelet, /var/lib/cni and /var/log
// are volumes of the image (as in rancher/k3s): containerd's overlayfs
// snapshotter cannot mount its layers on the container's overlay root
// ("failed to mount rootfs component ... invalid argument"), and can on a
// volume. k3d removes the volumes with the container.
const (
	agentDir        = dataDir + "/agent"
	agentEtcDir     = agentDir + "/etc"
	containerdRoot  = agentDir + "/containerd"
	containerdState = "/run/k3s/containerd"
	// containerdSocket is where k3s puts it: k3d's image import runs `ctr`
	// in the node, which the image points here (CONTAINERD_ADDRESS), and
	// Chaos Mesh's daemon is told this path.
	containerdSocket = containerdState + "/containerd.sock"
	// imagesDir holds image archives that are imported into containerd at
	// every start, as k3s imports its air-gap images: the pause image.
	imagesDir  = agentDir + "/images"
	cniConfDir = "/etc/cni/net.d"
	cniBinDir  = "/usr/lib/cni"
	// maskDir holds the values the kernel settings are masked with.
	maskDir = "/run/k3s-standin/masked"
)

// nodeSetup is what one node's containerd, kubelet and kube-proxy are
// configured with.
type nodeSetup struct {
	name    string
	ip      string
	podCIDR string // known once the kubelet registered the node
	// kubeconfig is the kubelet's own credential, which it writes once it
	// has its client certificate through bootstrapKubeconfig.
	kubeconfig, bootstrapKubeconfig string
	kubeProxyKubeconfig             string // system:kube-proxy
	// clientCA verifies the API server's kubelet client certificate.
	clientCA   string
	labels     []string // key=value, the kubelet's --node-labels
	taints     []string // key=value:Effect, the kubelet's --register-with-taints
	pauseImage string
	// resolvConf is the kubelet's resolvConf: the name servers of pods
	// with dnsPolicy Default (CoreDNS forwards to them) and the search
	// path of every pod.
	resolvConf    string
	kubeletArgs   []string // --kubelet-arg
	kubeProxyArgs []string // --kube-proxy-arg
}

// kubeletCertDir is where the kubelet keeps the client and serving
// certificates it asked for (and renews).
const kubeletCertDir = "/var/lib/kubelet/pki"

// startKubelet prepares the container as a node (kernel settings,
// containerd, the images) and starts containerd and the kubelet in g, in
// that order. The pod network (writeCNIConfig) and kube-proxy follow once
// the kubelet has registered the node and it has a pod range.
func startKubelet(ctx context.Context, log *slog.Logger, g *group, s nodeSetup) error {
	if s.pauseImage == "" {
		return errors.New("no pause image: the node image sets LAB_K3S_PAUSE_IMAGE")
	}
	if err := prepareKernel(log); err != nil {
		return err
	}
	host, err := os.ReadFile(hostResolvConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", hostResolvConf, err)
	}
	var generated string
	s.resolvConf, generated = podResolvConf(host)
	files := map[string]func(nodeSetup) (string, error){
		agentEtcDir + "/containerd/config.toml": containerdConfig,
		agentEtcDir + "/kubelet.yaml":           kubeletConfig,
		agentEtcDir + "/kube-proxy.yaml":        kubeProxyConfig,
	}
	if generated != "" {
		log.Warn("the node's resolv.conf has no name server that pods can reach; pods with dnsPolicy Default (CoreDNS's upstream) get k3s's fallback", "resolvConf", s.resolvConf)
		files[s.resolvConf] = func(nodeSetup) (string, error) { return generated, nil }
	}
	for path, render := range files {
		text, err := render(s)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	for _, d := range []string{containerdRoot, containerdState} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	if err := removeStaleNetns(log); err != nil {
		return err
	}
	if err := g.start("containerd", []string{"--config", agentEtcDir + "/containerd/config.toml"}, os.Environ()); err != nil {
		return err
	}
	if err := waitSocket(ctx, g, containerdSocket); err != nil {
		return err
	}
	log.Info("containerd is running", "socket", containerdSocket)
	if err := importImages(ctx, log); err != nil {
		return err
	}
	return g.start("kubelet", kubeletArgs(s), os.Environ())
}

// writeCNIConfig writes the pod network's configuration, which containerd
// picks up when it appears; until then the kubelet reports the node's
// network not ready.
func writeCNIConfig(s nodeSetup) error {
	text, err := cniConfig(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cniConfDir, 0o755); err != nil {
		return fmt.Errorf("write the CNI configuration: %w", err)
	}
	if err := os.WriteFile(cniConfDir+"/10-lab.conflist", []byte(text), 0o644); err != nil {
		return fmt.Errorf("write the CNI configuration: %w", err)
	}
	return nil
}

// containerdConfig is containerd's configuration: k3s's paths, the CRI
// plugin with the local pause image (nothing is pulled), cgroupfs (this
// machine's cgroup v1 and the kubelet's cgroupDriver), no OOM score lowering
// (the sandboxes lab is tested in lack CAP_SYS_RESOURCE, without which runc
// fails with "can't get final child's PID from pipe") and CNI from Debian's
// plugins.
func containerdConfig(s nodeSetup) (string, error) {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	return `version = 2
root = ` + q(containerdRoot) + `
state = ` + q(containerdState) + `
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ` + q(containerdSocket) + `

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ` + q(s.pauseImage) + `
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ` + q(cniBinDir) + `
    conf_dir = ` + q(cniConfDir) + `
`, nil
}

// cniConfig is the node's pod network: a bridge with the node's pod range
// (from kube-controller-manager), masquerading what leaves it, host ports.
func cniConfig(s nodeSetup) (string, error) {
	return cni.Bridge("lab-k3s-standin", s.podCIDR, true)
}

// hostResolvConf is the node container's resolver configuration, which
// k3d's DNS fix points at the Docker network's gateway.
const hostResolvConf = "/etc/resolv.conf"

// podResolvConf chooses the kubelet's resolvConf as k3s does: the node's
// own when it names a name server other than a loopback address (which a
// pod cannot reach), or else a generated one (returned as generated, to be
// written to the returned path) with k3s's fallback, 8.8.8.8.
func podResolvConf(host []byte) (path, generated string) {
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if ip := net.ParseIP(f[1]); ip != nil && !ip.IsLoopback() {
			return hostResolvConf, ""
		}
	}
	return agentEtcDir + "/resolv.conf", "nameserver 8.8.8.8\n"
}

// kubeletConfig is the KubeletConfiguration: cgroupfs and failCgroupV1
// false (cgroup v1 here), the API server authenticated by its client
// certificate and every other client by its token through the API (webhook
// authentication and authorization, as on k3s: metrics-server scrapes with
// its service account), client and serving certificates asked for (and
// renewed) through CertificateSigningRequests, k3s's cluster DNS, and
// image garbage collection and eviction thresholds that a shared test
// machine's disk does not trip (an imported image cannot be pulled again).
func kubeletConfig(s nodeSetup) (string, error) {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ` + s.clientCA + `
authorization:
  mode: Webhook
rotateCertificates: true
serverTLSBootstrap: true
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://` + containerdSocket + `
clusterDNS:
  - ` + clusterDNS + `
clusterDomain: ` + clusterDomain + `
resolvConf: ` + s.resolvConf + `
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
maxPods: 110
`, nil
}

// kubeletArgs is the kubelet's command line with the --kubelet-arg values:
// it bootstraps its credential and registers its Node itself, with the
// node's labels and taints.
func kubeletArgs(s nodeSetup) []string {
	args := []string{
		"config=" + agentEtcDir + "/kubelet.yaml",
		"bootstrap-kubeconfig=" + s.bootstrapKubeconfig,
		"kubeconfig=" + s.kubeconfig,
		"cert-dir=" + kubeletCertDir,
		"hostname-override=" + s.name,
		"node-ip=" + s.ip,
	}
	if len(s.labels) > 0 {
		args = append(args, "node-labels="+strings.Join(s.labels, ","))
	}
	if len(s.taints) > 0 {
		args = append(args, "register-with-taints="+strings.Join(s.taints, ","))
	}
	return componentArgs(args, s.kubeletArgs)
}

// kubeProxyConfig is kube-proxy's configuration: iptables in the node
// container's network namespace, k3s's cluster range, and conntrack left
// alone (its table size is the host's, not the container's).
func kubeProxyConfig(s nodeSetup) (string, error) {
	return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ` + s.kubeProxyKubeconfig + `
hostnameOverride: ` + s.name + `
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: ` + clusterCIDR + `
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, nil
}

// kubeProxyArgs is kube-proxy's command line with the --kube-proxy-arg
// values.
func kubeProxyArgs(s nodeSetup) []string {
	return componentArgs([]string{"config=" + agentEtcDir + "/kube-proxy.yaml"}, s.kubeProxyArgs)
}

// kubeletTunables are the kernel settings the kubelet sets when they differ
// from these values. They are the host's, not the container's: a
// privileged node container would change them for the whole machine.
func kubeletTunables() map[string]string {
	return map[string]string{
		"vm/overcommit_memory":      "1",
		"vm/panic_on_oom":           "0",
		"kernel/panic":              "10",
		"kernel/panic_on_oops":      "1",
		"kernel/keys/root_maxkeys":  "1000000",
		"kernel/keys/root_maxbytes": "25000000",
	}
}

// prepareKernel masks the kernel settings that the kubelet would change on
// the host with the kubelet's values, read-only and in this container's
// mount namespace only, and sets those of the container's network
// namespace that pods need (forwarding; iptables on the pod bridge, for
// Services).
func prepareKernel(log *slog.Logger) error {
	if err := os.MkdirAll(maskDir, 0o755); err != nil {
		return fmt.Errorf("mask kernel settings: %w", err)
	}
	var masked []string
	for path, want := range kubeletTunables() {
		target := "/proc/sys/" + path
		b, err := os.ReadFile(target)
		if err != nil {
			return fmt.Errorf("read the kernel setting %s: %w", path, err)
		}
		if strings.TrimSpace(string(b)) == want {
			continue
		}
		file := filepath.Join(maskDir, strings.ReplaceAll(path, "/", "."))
		if err := os.WriteFile(file, []byte(want+"\n"), 0o444); err != nil {
			return fmt.Errorf("mask %s: %w", target, err)
		}
		if err := syscall.Mount(file, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask %s: %w", target, err)
		}
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mask %s read-only: %w", target, err)
		}
		masked = append(masked, path)
	}
	slices.Sort(masked)
	log.Info("masked the host's kernel settings from the kubelet", "settings", masked)
	for path, v := range map[string]string{
		"net/ipv4/ip_forward":                "1",
		"net/bridge/bridge-nf-call-iptables": "1",
	} {
		if err := os.WriteFile("/proc/sys/"+path, []byte(v), 0o644); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				log.Warn("kernel setting missing (br_netfilter not loaded?): Services between pods of one node may not work", "setting", path)
				continue
			}
			return fmt.Errorf("set %s: %w", path, err)
		}
	}
	return nil
}

// netnsDir is where containerd's CRI plugin pins the pods' network
// namespaces.
const netnsDir = "/run/netns"

// removeStaleNetns removes the pins of the pods' network namespaces that a
// stopped container left: a new start of the container is a new network
// namespace, its pods' are gone, and the CNI plugins would not tear down a
// pod whose pin exists but is no network namespace (they do when it is
// missing), so the old pods' addresses would stay reserved.
func removeStaleNetns(log *slog.Logger) error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		path := filepath.Join(netnsDir, e.Name())
		_ = syscall.Unmount(path, syscall.MNT_DETACH) // none is mounted in a new container
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove the stale network namespace pin %s: %w", e.Name(), err)
		}
	}
	if len(entries) > 0 {
		log.Info("removed the network namespace pins of the pods before this start", "count", len(entries))
	}
	return nil
}

// waitSocket waits until containerd accepts connections on its socket.
func waitSocket(ctx context.Context, g *group, path string) error {
	err := poll(ctx, g, 100*time.Millisecond, func(ctx context.Context) bool {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	if err != nil {
		return fmt.Errorf("wait for containerd on %s: %w", path, err)
	}
	return nil
}

// importImages imports every image archive of imagesDir into containerd's
// k8s.io namespace, as k3s imports its air-gap images at every start.
func importImages(ctx context.Context, log *slog.Logger) error {
	archives, err := filepath.Glob(imagesDir + "/*.tar")
	if err != nil {
		return fmt.Errorf("list the images to import: %w", err)
	}
	for _, a := range archives {
		start := time.Now()
		out, err := exec.CommandContext(ctx, "ctr", "--address", containerdSocket, "--namespace", "k8s.io",
			"images", "import", "--all-platforms", a).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import %s into containerd: %w\n%s", a, err, out)
		}
		log.Info("imported images", "archive", a, "elapsed", time.Since(start).Round(time.Millisecond), "output", strings.TrimSpace(string(out)))
	}
	return nil
}

// certFits reports whether c is for pub and says what l says, with more
// than renewBefore left.
func certFits(c *x509.Certificate, l leaf, pub any) bool {
	if !samePublicKey(c.PublicKey, pub) || time.Until(c.NotAfter) < renewBefore || c.Subject.CommonName != l.commonName {
		return false
	}
	var have, want []string
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	for _, ip := range l.ips {
		want = append(want, ip.String())
	}
	return slices.Equal(sorted(have), sorted(want)) && slices.Equal(sorted(c.DNSNames), sorted(l.dnsNames))
}

// routeInterval is how often a node looks for new nodes to route to.
const routeInterval = 3 * time.Second

// syncRoutes keeps, until ctx ends, a route to every other node's pod range
// through that node's InternalIP: the nodes share one Docker network, so
// plain routes connect their pod bridges (what flannel's host-gw backend
// does). Pods' traffic that leaves the node is masqueraded by the CNI
// bridge, so a pod sees another node's pod by that node's address.
func syncRoutes(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, self string) {
	set := map[string]string{} // pod range -> via
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, n := range nodes.Items {
				via := internalIP(&n)
				if n.Name == self || n.Spec.PodCIDR == "" || via == "" || set[n.Spec.PodCIDR] == via {
					continue
				}
				out, err := exec.CommandContext(ctx, "ip", "route", "replace", n.Spec.PodCIDR, "via", via).CombinedOutput()
				if err != nil {
					log.Warn("could not route to the pods of a node", "node", n.Name, "podCIDR", n.Spec.PodCIDR, "via", via, "err", err, "output", strings.TrimSpace(string(out)))
					continue
				}
				set[n.Spec.PodCIDR] = via
				log.Info("routed to the pods of a node", "node", n.Name, "podCIDR", n.Spec.PodCIDR, "via", via)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(routeInterval):
		}
	}
}

// internalIP returns the node's InternalIP address, or "".
func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
