package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
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
	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
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
	name       string
	ip         string
	podCIDR    string
	kubeconfig string // the kubelet's and kube-proxy's credential
	// clientCA verifies the API server's kubelet client certificate.
	clientCA string
	// servingCert and servingKey are the kubelet's, signed by the cluster
	// CA through a CertificateSigningRequest.
	servingCert, servingKey string
	pauseImage              string
	// resolvConf is the kubelet's resolvConf: the name servers of pods
	// with dnsPolicy Default (CoreDNS forwards to them) and the search
	// path of every pod.
	resolvConf    string
	kubeletArgs   []string // --kubelet-arg
	kubeProxyArgs []string // --kube-proxy-arg
}

// startNodeComponents prepares the container as a node (kernel settings,
// containerd, the images, the pod network) and starts containerd, the
// kubelet and kube-proxy in g, in that order.
func startNodeComponents(ctx context.Context, log *slog.Logger, g *group, s nodeSetup) error {
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
		cniConfDir + "/10-lab.conflist":         cniConfig,
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
	if err := g.start("kubelet", kubeletArgs(s), os.Environ()); err != nil {
		return err
	}
	return g.start("kube-proxy", kubeProxyArgs(s), os.Environ())
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
// its service account), the cluster CA's serving certificate, k3s's cluster
// DNS, and
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
tlsCertFile: ` + s.servingCert + `
tlsPrivateKeyFile: ` + s.servingKey + `
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

// kubeletArgs is the kubelet's command line with the --kubelet-arg values.
func kubeletArgs(s nodeSetup) []string {
	return componentArgs([]string{
		"config=" + agentEtcDir + "/kubelet.yaml",
		"kubeconfig=" + s.kubeconfig,
		"hostname-override=" + s.name,
		"node-ip=" + s.ip,
	}, s.kubeletArgs)
}

// kubeProxyConfig is kube-proxy's configuration: iptables in the node
// container's network namespace, k3s's cluster range, and conntrack left
// alone (its table size is the host's, not the container's).
func kubeProxyConfig(s nodeSetup) (string, error) {
	return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ` + s.kubeconfig + `
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

// kubeletServingCert returns the paths of the kubelet's serving certificate
// and key, signed by the cluster CA: a CertificateSigningRequest for
// kubernetes.io/kubelet-serving, approved by this node with its cluster
// credential (as k3s's server would sign it), signed by
// kube-controller-manager. A certificate from an earlier start is kept while
// it names the node's addresses and is not close to expiry.
func kubeletServingCert(ctx context.Context, cs kubernetes.Interface, name string, dnsNames []string, ips []net.IP) (certPath, keyPath string, err error) {
	certPath, keyPath = agentDir+"/serving-kubelet.crt", agentDir+"/serving-kubelet.key"
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return "", "", fmt.Errorf("make %s: %w", agentDir, err)
	}
	key, err := loadOrGenerateKey(keyPath)
	if err != nil {
		return "", "", err
	}
	l := leaf{commonName: "system:node:" + name, organization: []string{"system:nodes"}, dnsNames: dnsNames, ips: ips}
	if certs, err := cert.CertsFromFile(certPath); err == nil && len(certs) > 0 && servingCertFits(certs[0], l, key.Public()) {
		return certPath, keyPath, nil
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: l.commonName, Organization: l.organization},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, key)
	if err != nil {
		return "", "", fmt.Errorf("make the kubelet's certificate request: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	usages := []certsv1.KeyUsage{certsv1.UsageDigitalSignature, certsv1.UsageKeyEncipherment, certsv1.UsageServerAuth}
	reqName, reqUID, err := csr.RequestCertificateWithContext(ctx, cs, csrPEM, "", certsv1.KubeletServingSignerName, nil, usages, key)
	if err != nil {
		return "", "", fmt.Errorf("request the kubelet's serving certificate: %w", err)
	}
	req, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, reqName, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("read certificate request %s: %w", reqName, err)
	}
	req.Status.Conditions = append(req.Status.Conditions, certsv1.CertificateSigningRequestCondition{
		Type: certsv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "K3sStandinNode", Message: "the kubelet serving certificate of node " + name + ", requested by the node itself",
	})
	if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, reqName, req, metav1.UpdateOptions{}); err != nil {
		return "", "", fmt.Errorf("approve certificate request %s: %w", reqName, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	crt, err := csr.WaitForCertificate(wctx, cs, reqName, reqUID)
	if err != nil {
		return "", "", fmt.Errorf("wait for the kubelet's serving certificate (%s): %w", reqName, err)
	}
	if err := cert.WriteCert(certPath, crt); err != nil {
		return "", "", fmt.Errorf("write the kubelet's serving certificate: %w", err)
	}
	return certPath, keyPath, nil
}

// servingCertFits reports whether c is for pub and says what l says, with
// more than renewBefore left.
func servingCertFits(c *x509.Certificate, l leaf, pub any) bool {
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

// waitClusterCA waits for the cluster CA that kube-controller-manager
// publishes in every namespace (kube-root-ca.crt) and writes it to path:
// an agent's kubelet verifies the API server's client certificate with it.
func waitClusterCA(ctx context.Context, g *group, cs kubernetes.Interface, path string) error {
	var ca string
	err := poll(ctx, g, 500*time.Millisecond, func(ctx context.Context) bool {
		cm, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err == nil {
			ca = cm.Data["ca.crt"]
		}
		return ca != ""
	})
	if err != nil {
		return fmt.Errorf("wait for the cluster CA (kube-system/kube-root-ca.crt): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write the cluster CA: %w", err)
	}
	if err := os.WriteFile(path, []byte(ca), 0o644); err != nil {
		return fmt.Errorf("write the cluster CA: %w", err)
	}
	return nil
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
