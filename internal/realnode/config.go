package realnode

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/jewelry-shop/lab/internal/cni"
)

// nodeFiles are the paths one node's configuration refers to.
type nodeFiles struct {
	Name, IP      string
	HostIP        string // the cluster DNS and the host services
	ClusterCIDR   string // every pod range, for kube-proxy
	PodCIDR       string
	Socket        string // containerd's
	CNIDir        string
	ResolvConf    string
	Kubeconfig    string
	PauseImage    string
	CgroupRoot    string // the kubelet's, for the pods
	ClusterDomain string
	RunC          string
}

// containerdConfig is the node's containerd configuration: its own socket,
// its state in the node's tmpfs directories, cgroupfs and the host's runc,
// the locally built pause image, CNI from the host's plugins, and no OOM
// score lowering (the sandbox that tests run in lacks CAP_SYS_RESOURCE,
// without which runc fails with "can't get final child's PID from pipe").
func containerdConfig(f nodeFiles) (string, error) {
	return render("containerd", `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {{ q .Socket }}

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd-opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {{ q .PauseImage }}
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
        BinaryName = {{ q .RunC }}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = {{ q .CNIDir }}
`, f)
}

// cniConfig is the node's pod network: a bridge with the node's pod range,
// the gateway on the node, no masquerading (every address is routed within
// the tier), and host ports.
func cniConfig(f nodeFiles) (string, error) {
	return cni.Bridge("lab-realnode", f.PodCIDR, false)
}

// kubeletConfig is the node's KubeletConfiguration: cgroupfs on this
// machine's cgroup v1 (failCgroupV1: false), its pods under a cgroup of the
// test's own, serving on the node's address with anonymous access (the API
// server has no kubelet client certificate here; the address is only on the
// test bridge), the cluster DNS on the host's bridge address, and eviction
// thresholds that the tmpfs state and the shared host do not trip.
func kubeletConfig(f nodeFiles) (string, error) {
	return render("kubelet", `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {{ .IP }}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: {{ .CgroupRoot }}
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{{ .Socket }}
clusterDNS:
  - {{ .HostIP }}
clusterDomain: {{ .ClusterDomain }}
resolvConf: {{ .ResolvConf }}
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
maxPods: 110
`, f)
}

// kubeProxyConfig is the node's kube-proxy: iptables in the node's network
// namespace, the tier's pod ranges as the cluster's, and conntrack left
// alone (its table size is the host's, not the namespace's).
func kubeProxyConfig(f nodeFiles) (string, error) {
	return render("kube-proxy", `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{ .Kubeconfig }}
hostnameOverride: {{ .Name }}
bindAddress: 0.0.0.0
healthzBindAddress: {{ .IP }}:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: {{ .ClusterCIDR }}
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, f)
}

// corefile is the cluster DNS: the cluster's names from the API, cached as
// on k3s, on the host's bridge address only. Names outside the cluster
// resolve nowhere: the tier has no upstream.
func corefile(hostIP, readyPort, kubeconfig, domain string) (string, error) {
	return render("Corefile", `.:53 {
    bind {{ .HostIP }}
    errors
    ready {{ .HostIP }}:{{ .ReadyPort }}
    kubernetes {{ .Domain }} in-addr.arpa ip6.arpa {
        kubeconfig {{ .Kubeconfig }}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loop
    loadbalance
}
`, map[string]string{"HostIP": hostIP, "ReadyPort": readyPort, "Kubeconfig": kubeconfig, "Domain": domain})
}

func render(name, text string, data any) (string, error) {
	t, err := template.New(name).Funcs(template.FuncMap{"q": tomlString}).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse the %s configuration: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render the %s configuration: %w", name, err)
	}
	return b.String(), nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
