// Package realnode gives tests real Kubernetes nodes beside the test control
// plane (tier 3b of the verification in DESIGN.md): each node is a kubelet,
// kube-proxy and a containerd of its own (Debian's containerd 1.6, runc and
// CNI plugins), in PID, network, mount and UTS namespaces of its own, so
// that the jewelry-shop chart's pods run in real containers with real
// probes, Service names and HPA metrics. For tests only.
//
// The nodes hang off a bridge in a network namespace of the test's own; the
// host has one link to it, with the address where the host serves the nodes:
// the Kubernetes API (relayed to the control plane on loopback), the cluster
// DNS (CoreDNS) and metrics-server (registered as v1beta1.metrics.k8s.io),
// and whatever else a test runs for them (a PostgreSQL, say). A node has no
// default route: nothing it runs can reach beyond the bridge, so no image is
// ever pulled; every image is imported into every node before its kubelet
// starts (the pause, Redis and nginx images of testnode.BuildWorkloadImages
// and those the test names).
//
// A node's state is in tmpfs directories of its mount namespace, and every
// process it starts is in its PID namespace, whose init (cmd/labnode) gets
// SIGKILL when the test binary dies: a failed or killed test leaves no
// process, mount, network namespace or iptables rule behind. What could stay
// on the host (cgroups, the work directory, the host's link) carries the
// test binary's PID and is swept by the next tier when that binary is gone.
//
// It needs root, Linux, the Debian packages containerd, runc,
// containernetworking-plugins, iptables, iproute2 and util-linux (nsenter),
// and the test assets (kubelet, kube-proxy, coredns, metrics-server); the
// first build of the workload images needs debootstrap. What is missing
// fails the test under CI=true and skips it elsewhere, naming the fix.
package realnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jewelry-shop/lab/internal/ci"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/realnode/nodespec"
	"github.com/jewelry-shop/lab/internal/testnode"
)

// Options choose the tier's shape.
type Options struct {
	// Nodes is how many nodes run (default 3): realnode-server-0, labelled
	// as k3s labels its servers, then realnode-agent-0, realnode-agent-1, …
	Nodes int
	// Images are docker-archive tarballs that every node imports besides the
	// workload images, e.g. the shop's.
	Images []string
}

// Cluster is a running tier.
type Cluster struct {
	// HostIP is the host's address on the test bridge: where it serves the
	// nodes (the API, DNS, metrics-server) and where a test's own services
	// for the pods listen.
	HostIP string
	// ClusterCIDR holds the bridge and every node's pod range.
	ClusterCIDR string
	Nodes       []Node
	// Images are the workload images every node has.
	Images testnode.WorkloadImages

	env      *controlplane.Env
	log      *slog.Logger
	addr     addressing
	work     string
	link     string
	cgroups  []cgroupMount
	cgroup   string // the tier's cgroup, relative to every hierarchy
	switchNS *process
	nodes    []*process
	addons   []*process
	api      *forwarder
	// stopProvisioner stops the local-path provisioner.
	stopProvisioner func()
}

// Node is one running node.
type Node struct {
	Name    string
	IP      string
	PodCIDR string
	// Dir holds the node's configuration, its containerd socket and its
	// daemons' logs (Dir/logs).
	Dir string
}

// nodeName names node i like a k3d node of one server and agents.
func nodeName(i int) string {
	if i == 0 {
		return "realnode-server-0"
	}
	return "realnode-agent-" + strconv.Itoa(i-1)
}

// Start starts the tier's nodes and add-ons on env's control plane, which
// must have been started with controlplane.Options{RealNodes: true}, and
// stops them, leaving nothing behind, when the test ends. It returns once
// every node is Ready and the metrics API is available.
func Start(tb testing.TB, env *controlplane.Env, opts Options) *Cluster {
	tb.Helper()
	ctx := tb.Context()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 1 || opts.Nodes > maxNodes {
		tb.Fatalf("realnode: %d nodes; between 1 and %d fit a slot", opts.Nodes, maxNodes)
	}
	checkHost(tb)
	assets, err := controlplane.AssetsDir()
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range []string{"kubelet", "kube-proxy", "coredns", "metrics-server"} {
		if fi, err := os.Stat(filepath.Join(assets, b)); err != nil || fi.Mode()&0o111 == 0 {
			ci.Missing(tb, "test asset %s not found in %s; build it with make test-assets (or: hack/test-assets.sh)", b, assets)
		}
	}
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	begin := time.Now()
	imgs, err := testnode.BuildWorkloadImages(ctx, testnode.Options{Log: log})
	var missing *testnode.MissingError
	if errors.As(err, &missing) {
		ci.Missing(tb, "%v", err)
	}
	if err != nil {
		tb.Fatalf("build the workload images: %v", err)
	}
	tb.Logf("realnode: workload images ready in %v", time.Since(begin).Round(time.Millisecond))
	if err := sweep(ctx, log); err != nil {
		tb.Fatalf("realnode: remove what earlier tiers left: %v", err)
	}
	work, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", workPrefix, os.Getpid()))
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{Images: imgs, env: env, log: log, work: work}
	tb.Cleanup(func() {
		// tb.Context is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := c.stop(ctx, tb.Failed()); err != nil {
			tb.Errorf("realnode: stop the tier: %v", err)
		}
	})
	begin = time.Now()
	if err := c.up(ctx, assets, opts); err != nil {
		tb.Fatalf("realnode: bring the nodes up: %v", err)
	}
	tb.Logf("realnode: %d Ready nodes on %s (host %s), CoreDNS and metrics-server in %v", len(c.Nodes), c.addr.bridge, c.HostIP, time.Since(begin).Round(time.Millisecond))
	return c
}

// checkHost ends the test when the machine cannot run nodes.
func checkHost(tb testing.TB) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		ci.Missing(tb, "real nodes need Linux (namespaces, cgroups, containerd)")
	}
	if os.Geteuid() != 0 {
		ci.Missing(tb, "real nodes need root (namespaces, cgroups, mounts); run the tests as root (.ci/run does)")
	}
	for _, b := range []struct{ path, pkg string }{
		{"/usr/bin/containerd", "containerd"},
		{"/usr/bin/containerd-shim-runc-v2", "containerd"},
		{"/usr/bin/ctr", "containerd"},
		{"/usr/sbin/runc", "runc"},
		{"/usr/lib/cni/bridge", "containernetworking-plugins"},
		{"/usr/lib/cni/host-local", "containernetworking-plugins"},
		{"/usr/lib/cni/portmap", "containernetworking-plugins"},
		{"/usr/sbin/iptables", "iptables"},
		{"/usr/sbin/ip", "iproute2"},
		{"/usr/bin/nsenter", "util-linux"},
	} {
		if _, err := os.Stat(b.path); err != nil {
			ci.Missing(tb, "%s not found; apt-get install -y %s", b.path, b.pkg)
		}
	}
}

// up brings the bridge, the nodes and the add-ons up and waits for them.
func (c *Cluster) up(ctx context.Context, assets string, opts Options) error {
	labnode, err := buildLabnode(ctx, c.work)
	if err != nil {
		return err
	}
	if err := c.network(ctx, labnode); err != nil {
		return err
	}
	api, err := url.Parse(c.env.Config.Host)
	if err != nil {
		return fmt.Errorf("read the API server's address %q: %w", c.env.Config.Host, err)
	}
	c.api, err = listenForward(ctx, net.JoinHostPort(c.HostIP, api.Port()), api.Host)
	if err != nil {
		return err
	}
	nodeKubeconfig := filepath.Join(c.work, "node.kubeconfig")
	if err := c.writeKubeconfig(nodeKubeconfig, "https://"+c.api.addr()); err != nil {
		return err
	}
	if c.cgroups, err = cgroupMounts(); err != nil {
		return err
	}
	c.cgroup = filepath.Join(cgroupParent, fmt.Sprintf("%d-%d", os.Getpid(), c.addr.slot))
	masked, err := kubeletTunables()
	if err != nil {
		return err
	}
	images := append([]string{c.Images.Pause.Archive, c.Images.Redis.Archive, c.Images.Nginx.Archive}, opts.Images...)
	for i := range opts.Nodes {
		if err := c.startNode(ctx, i, opts.Nodes, labnode, assets, nodeKubeconfig, masked, images); err != nil {
			return err
		}
	}
	if err := c.startAddons(ctx, assets); err != nil {
		return err
	}
	if err := createStorageClass(ctx, c.env.Client); err != nil {
		return err
	}
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.provision(pctx, c.log)
	}()
	c.stopProvisioner = func() { stop(); <-done }
	return c.waitReady(ctx)
}

// buildLabnode builds cmd/labnode into dir.
func buildLabnode(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "labnode")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/jewelry-shop/lab/internal/realnode/cmd/labnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build labnode: %w\n%s", err, out)
	}
	return bin, nil
}

// network makes the bridge, in a network namespace held by `labnode hold`,
// and the host's link to it, in a free slot of the tier's range. The choice
// and the link are made under a lock, so that two tiers starting at once
// take different slots.
func (c *Cluster) network(ctx context.Context, labnode string) error {
	cache, err := controlplane.CacheDir()
	if err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(cache, "realnode", "network.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	inUse, err := prefixesInUse(ctx)
	if err != nil {
		return err
	}
	slot, err := freeSlot(inUse)
	if err != nil {
		return err
	}
	c.addr = newAddressing(slot)
	c.HostIP, c.ClusterCIDR = c.addr.host.String(), c.addr.cluster.String()
	c.link = linkPrefix + strconv.Itoa(slot)
	c.switchNS, err = startProcess("bridge", filepath.Join(c.work, "bridge.log"), labnode, []string{"hold"}, syscall.CLONE_NEWNET)
	if err != nil {
		return err
	}
	sw := c.switchNS.pid()
	for _, step := range []struct {
		ns   bool
		args []string
	}{
		{true, []string{"link", "set", "lo", "up"}},
		{true, []string{"link", "add", "br0", "type", "bridge"}},
		{true, []string{"link", "set", "br0", "up"}},
		{false, []string{"link", "add", c.link, "type", "veth", "peer", "name", "up0", "netns", strconv.Itoa(sw)}},
		{false, []string{"link", "set", "dev", c.link, "alias", linkAlias + " " + strconv.Itoa(os.Getpid())}},
		{false, []string{"addr", "add", netipPrefix(c.addr.host, 24), "dev", c.link}},
		{false, []string{"link", "set", c.link, "up"}},
		{true, []string{"link", "set", "up0", "master", "br0", "up"}},
	} {
		if step.ns {
			_, err = inNetns(ctx, sw, "ip", step.args...)
		} else {
			_, err = run(ctx, "ip", step.args...)
		}
		if err != nil {
			return fmt.Errorf("make the test bridge: %w", err)
		}
	}
	return nil
}

func netipPrefix(a fmt.Stringer, bits int) string { return a.String() + "/" + strconv.Itoa(bits) }

// writeKubeconfig writes the nodes' kubeconfig: the control plane's admin
// credentials, through the relay on the bridge. The API server's
// certificate names localhost, which the relay carries unchanged.
func (c *Cluster) writeKubeconfig(path, server string) error {
	rc := c.env.Config
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["realnode"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: rc.CAData, TLSServerName: "localhost"}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData}
	cfg.Contexts["realnode"] = &clientcmdapi.Context{Cluster: "realnode", AuthInfo: "admin"}
	cfg.CurrentContext = "realnode"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write the nodes' kubeconfig: %w", err)
	}
	return nil
}

// kubeletTunables returns the kernel settings the kubelet sets when they
// differ from its values, which differ on this host: they are the host's,
// so each node sees them masked with the kubelet's value instead.
func kubeletTunables() (map[string]string, error) {
	want := map[string]string{
		"vm/overcommit_memory":      "1",
		"vm/panic_on_oom":           "0",
		"kernel/panic":              "10",
		"kernel/panic_on_oops":      "1",
		"kernel/keys/root_maxkeys":  "1000000",
		"kernel/keys/root_maxbytes": "25000000",
	}
	masked := map[string]string{}
	for path, v := range want {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		if err != nil {
			return nil, fmt.Errorf("read the kernel setting %s: %w", path, err)
		}
		if strings.TrimSpace(string(b)) != v {
			masked[path] = v
		}
	}
	return masked, nil
}

// startNode writes node i's configuration and starts its labnode, plugged
// into the bridge.
func (c *Cluster) startNode(ctx context.Context, i, n int, labnode, assets, kubeconfig string, masked map[string]string, images []string) error {
	name := nodeName(i)
	dir := filepath.Join(c.work, name)
	logs := filepath.Join(dir, "logs")
	for _, d := range []string{logs, filepath.Join(dir, "cni")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
	}
	ip := c.addr.nodeIP(i)
	node := Node{Name: name, IP: ip.String(), PodCIDR: c.addr.podCIDR(i).String(), Dir: dir}
	f := nodeFiles{
		Name: name, IP: node.IP, HostIP: c.HostIP, ClusterCIDR: c.ClusterCIDR, PodCIDR: node.PodCIDR,
		Socket:        filepath.Join(dir, "containerd.sock"),
		CNIDir:        filepath.Join(dir, "cni"),
		ResolvConf:    filepath.Join(dir, "resolv.conf"),
		Kubeconfig:    kubeconfig,
		PauseImage:    c.Images.Pause.Ref,
		CgroupRoot:    "/" + filepath.Join(c.cgroup, name, "pods"),
		ClusterDomain: "cluster.local",
		RunC:          "/usr/sbin/runc",
	}
	files := map[string]func(nodeFiles) (string, error){
		"containerd.toml":     containerdConfig,
		"kubelet.yaml":        kubeletConfig,
		"kube-proxy.yaml":     kubeProxyConfig,
		"cni/10-lab.conflist": cniConfig,
		"resolv.conf":         func(nodeFiles) (string, error) { return "# the cluster DNS comes from the kubelet's clusterDNS\n", nil },
	}
	for file, render := range files {
		text, err := render(f)
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
	}
	var routes []nodespec.Route
	for j := range n {
		if j != i {
			routes = append(routes, nodespec.Route{To: c.addr.podCIDR(j).String(), Via: c.addr.nodeIP(j).String()})
		}
	}
	spec := nodespec.Spec{
		Name: name, Address: netipPrefix(ip, 24), Routes: routes,
		Tmpfs: []nodespec.Tmpfs{{Path: "/run", Size: "1g"}, {Path: "/var/lib", Size: "8g"}, {Path: "/var/log", Size: "1g"}},
		Sysctls: map[string]string{
			"net/ipv4/ip_forward":                 "1",
			"net/bridge/bridge-nf-call-iptables":  "1",
			"net/bridge/bridge-nf-call-ip6tables": "1",
		},
		Masked: masked,
		Socket: f.Socket, Ctr: "/usr/bin/ctr", Import: images,
		Containerd: nodespec.Daemon{Name: "containerd", Path: "/usr/bin/containerd", Args: []string{"--config", filepath.Join(dir, "containerd.toml")}},
		Kubelet: nodespec.Daemon{Name: "kubelet", Path: filepath.Join(assets, "kubelet"), Args: []string{
			"--config=" + filepath.Join(dir, "kubelet.yaml"), "--kubeconfig=" + kubeconfig,
			"--hostname-override=" + name, "--node-ip=" + node.IP, "--v=1",
		}},
		KubeProxy: nodespec.Daemon{Name: "kube-proxy", Path: filepath.Join(assets, "kube-proxy"), Args: []string{
			"--config=" + filepath.Join(dir, "kube-proxy.yaml"), "--v=1",
		}},
		LogDir: logs,
	}
	specPath := filepath.Join(dir, "node.json")
	if err := nodespec.Write(specPath, spec); err != nil {
		return err
	}
	for _, sub := range []string{"system", "pods"} {
		if err := makeCgroup(c.cgroups, filepath.Join(c.cgroup, name, sub)); err != nil {
			return err
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	defer w.Close()
	p, err := startProcess(name, filepath.Join(logs, "labnode.log"), labnode, []string{"node", specPath},
		syscall.CLONE_NEWPID|syscall.CLONE_NEWNET|syscall.CLONE_NEWNS|syscall.CLONE_NEWUTS, r)
	_ = r.Close()
	if err != nil {
		return err
	}
	c.nodes = append(c.nodes, p)
	if err := joinCgroup(c.cgroups, filepath.Join(c.cgroup, name, "system"), p.pid()); err != nil {
		return err
	}
	link := "n" + strconv.Itoa(i)
	for _, args := range [][]string{
		{"link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(p.pid())},
		{"link", "set", link, "master", "br0", "up"},
	} {
		if _, err := inNetns(ctx, c.switchNS.pid(), "ip", args...); err != nil {
			return fmt.Errorf("plug node %s into the bridge: %w", name, err)
		}
	}
	if _, err := w.Write([]byte{1}); err != nil {
		return fmt.Errorf("node %s: tell it its link is there: %w", name, errors.Join(err, p.failure()))
	}
	if _, err := run(ctx, "ip", "route", "add", node.PodCIDR, "via", node.IP, "dev", c.link); err != nil {
		return fmt.Errorf("route node %s's pods: %w", name, err)
	}
	c.Nodes = append(c.Nodes, node)
	return nil
}

// startAddons starts CoreDNS and metrics-server on the host's bridge
// address and registers metrics-server as v1beta1.metrics.k8s.io.
func (c *Cluster) startAddons(ctx context.Context, assets string) error {
	const readyPort = "8181"
	cf, err := corefile(c.HostIP, readyPort, c.env.Kubeconfig, "cluster.local")
	if err != nil {
		return err
	}
	cfPath := filepath.Join(c.work, "Corefile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o644); err != nil {
		return fmt.Errorf("write the Corefile: %w", err)
	}
	dns, err := startProcess("coredns", filepath.Join(c.work, "coredns.log"), filepath.Join(assets, "coredns"), []string{"-conf", cfPath}, 0)
	if err != nil {
		return err
	}
	c.addons = append(c.addons, dns)

	msPort, err := freePort(ctx, c.HostIP)
	if err != nil {
		return err
	}
	msDir := filepath.Join(c.work, "metrics-server")
	if err := os.MkdirAll(msDir, 0o700); err != nil {
		return fmt.Errorf("metrics-server: %w", err)
	}
	kc := c.env.Kubeconfig
	ms, err := startProcess("metrics-server", filepath.Join(c.work, "metrics-server.log"), filepath.Join(assets, "metrics-server"), []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=" + c.HostIP, "--secure-port=" + strconv.Itoa(msPort), "--cert-dir=" + msDir,
		"--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
		"--metric-resolution=15s",
	}, 0)
	if err != nil {
		return err
	}
	c.addons = append(c.addons, ms)
	if err := c.registerMetricsAPI(ctx, msPort); err != nil {
		return err
	}
	return c.waitHTTP(ctx, dns, "http://"+net.JoinHostPort(c.HostIP, readyPort)+"/ready", time.Minute)
}

// freePort returns a TCP port free on host a moment ago.
func freePort(ctx context.Context, host string) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// registerMetricsAPI makes kube-system/metrics-server a Service whose one
// endpoint is metrics-server on the bridge, and the APIService that the API
// server aggregates through it.
func (c *Cluster) registerMetricsAPI(ctx context.Context, port int) error {
	cl := c.env.Client
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	ep := &corev1.Endpoints{ //nolint:staticcheck // mirrored into EndpointSlices, as a selectorless Service's are
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"},
		Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck // see above
			Addresses: []corev1.EndpointAddress{{IP: c.HostIP}},                                   //nolint:staticcheck // see above
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port), Protocol: "TCP"}}, //nolint:staticcheck // see above
		}},
	}
	apisvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.metrics.k8s.io"},
		"spec": map[string]any{
			"service":               map[string]any{"name": "metrics-server", "namespace": "kube-system", "port": int64(443)},
			"group":                 "metrics.k8s.io",
			"version":               "v1beta1",
			"insecureSkipTLSVerify": true,
			"groupPriorityMinimum":  int64(100),
			"versionPriority":       int64(100),
		},
	}}
	for _, o := range []client.Object{svc, ep, apisvc} {
		if err := cl.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("register metrics-server: create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// waitHTTP waits until url answers 200, failing when p ends first.
func (c *Cluster) waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, p.failure()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		_ = resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s at %s (last: %s): %w", p.name, url, last, err)
	}
	return nil
}

// waitReady waits until every node is Ready, labels the server, and waits
// until the metrics API is available.
func (c *Cluster) waitReady(ctx context.Context) error {
	for i, n := range c.Nodes {
		p := c.nodes[i]
		var last string
		err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			if p.exited() {
				return false, fmt.Errorf("%w\n%s", p.failure(), logTails(filepath.Join(n.Dir, "logs"), 2000))
			}
			var node corev1.Node
			if err := c.env.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &node); err != nil {
				last = err.Error()
				return false, nil
			}
			last = fmt.Sprintf("conditions %v", node.Status.Conditions)
			return controlplane.NodeReady(&node), nil
		})
		if err != nil {
			return fmt.Errorf("wait for node %s to be Ready (last seen: %s): %w\n%s", n.Name, last, err, logTails(filepath.Join(n.Dir, "logs"), 2000))
		}
	}
	server := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.Nodes[0].Name}}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":"true","node-role.kubernetes.io/master":"true"}}}`))
	if err := c.env.Client.Patch(ctx, server, patch); err != nil {
		return fmt.Errorf("label the server node: %w", err)
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, a := range c.addons {
			if a.exited() {
				return false, a.failure()
			}
		}
		var svc unstructured.Unstructured
		svc.SetAPIVersion("apiregistration.k8s.io/v1")
		svc.SetKind("APIService")
		if err := c.env.Client.Get(ctx, client.ObjectKey{Name: "v1beta1.metrics.k8s.io"}, &svc); err != nil {
			last = err.Error()
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(svc.Object, "status", "conditions")
		last = fmt.Sprint(conds)
		for _, cd := range conds {
			m, _ := cd.(map[string]any)
			if m["type"] == "Available" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the metrics API (last: %s): %w\n--- end of metrics-server's log:\n%s", last, err, tailFile(filepath.Join(c.work, "metrics-server.log"), 2000))
	}
	return nil
}

// stop stops the nodes, the add-ons and the bridge, removes the tier's
// cgroups and Node objects, and its work directory unless keep (a failed
// test: the logs stay, and the next tier sweeps them).
func (c *Cluster) stop(ctx context.Context, keep bool) error {
	var errs []error
	if c.stopProvisioner != nil {
		c.stopProvisioner()
	}
	for _, n := range c.Nodes {
		_ = c.env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}})
	}
	for _, o := range []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"}},
		&corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"}}, //nolint:staticcheck // created above
	} {
		_ = c.env.Client.Delete(ctx, o)
	}
	apisvc := &unstructured.Unstructured{}
	apisvc.SetAPIVersion("apiregistration.k8s.io/v1")
	apisvc.SetKind("APIService")
	apisvc.SetName("v1beta1.metrics.k8s.io")
	_ = c.env.Client.Delete(ctx, apisvc)
	for _, p := range c.nodes {
		p.stop(20 * time.Second)
	}
	for _, p := range c.addons {
		p.stop(5 * time.Second)
	}
	if c.api != nil {
		c.api.close()
	}
	if c.switchNS != nil {
		c.switchNS.stop(5 * time.Second)
	}
	if c.cgroup != "" {
		errs = append(errs, removeCgroup(c.cgroups, c.cgroup, 20*time.Second))
		for _, m := range c.cgroups {
			_ = os.Remove(filepath.Join(m.path, cgroupParent)) // only when no other tier uses it
		}
	}
	if c.link != "" {
		if _, err := os.Stat(filepath.Join("/sys/class/net", c.link)); err == nil {
			if _, err := run(ctx, "ip", "link", "del", c.link); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if keep {
		fmt.Fprintf(os.Stderr, "realnode: logs kept in %s\n", c.work)
	} else if err := os.RemoveAll(c.work); err != nil {
		errs = append(errs, fmt.Errorf("remove the work directory: %w", err))
	}
	return errors.Join(errs...)
}

// tbWriter writes a logger's lines to the test log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
