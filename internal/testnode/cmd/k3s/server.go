package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	serverDir = dataDir + "/server"
	tlsDir    = serverDir + "/tls"
	credDir   = serverDir + "/cred"
	// manifestsDir is where k3s deploys its bundled manifests from; k3d
	// rewrites coredns.yaml there (NodeHosts) once the server is up.
	manifestsDir = serverDir + "/manifests"
	etcdDataDir  = serverDir + "/db/etcd"
	apiPort      = 6443
)

// runServer runs a k3s server's control plane: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, the real binaries, and the
// server's node: containerd, the kubelet and kube-proxy, and deploys the
// add-ons from the manifests directory. It logs k3d's ready
// messages only once they are true: "k3s is up and running" when the API is
// ready and the server's own Node is Ready, "Cluster dns configmap" when
// that ConfigMap exists.
func runServer(ctx context.Context, log *slog.Logger, out *lineWriter, c config) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read the host name: %w", err)
	}
	name := c.nodeName
	if name == "" {
		name = host
	}
	ips, err := nodeIPs()
	if err != nil {
		return err
	}
	deployCoreDNS := !slices.Contains(c.disable, "coredns")
	if err := writeManifests(manifestsDir, c.images, c.disable); err != nil {
		return err
	}

	p, err := loadOrCreatePKI(tlsDir)
	if err != nil {
		return err
	}
	caPEM, err := p.caPEM()
	if err != nil {
		return err
	}
	serving, servingKey, err := p.issue(servingLeaf(host, name, ips, c.tlsSANs))
	if err != nil {
		return err
	}
	if _, err := loadOrGenerateKey(tlsDir + "/service.key"); err != nil {
		return err
	}
	// The request-header CA signs the API server's front-proxy client
	// certificate (API aggregation); the controllers and the scheduler
	// read it from kube-system/extension-apiserver-authentication.
	rh, err := loadOrCreatePKI(tlsDir + "/request-header")
	if err != nil {
		return err
	}
	proxyClient, proxyClientKey, err := rh.issue(leaf{name: "client-auth-proxy", commonName: "system:auth-proxy"})
	if err != nil {
		return err
	}
	authnConfig := serverDir + "/authentication.yaml"
	if err := os.WriteFile(authnConfig, []byte(authenticationConfig()), 0o600); err != nil {
		return fmt.Errorf("write the authentication configuration: %w", err)
	}

	local := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	kc := map[string]*clientcmdapi.Config{}
	// The server's own kube-proxy gets its certificate from the server's
	// CA; an agent's asks for it (kubeProxyCert).
	for _, u := range []struct{ name, cn, org string }{
		{"admin", "system:admin", "system:masters"},
		{"controller", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kube-proxy", kubeProxyUser, ""},
	} {
		l := leaf{name: "client-" + u.name, commonName: u.cn}
		if u.org != "" {
			l.organization = []string{u.org}
		}
		crt, key, err := p.issue(l)
		if err != nil {
			return err
		}
		kc[u.name] = kubeconfig(local, caPEM, false, &clientcmdapi.AuthInfo{ClientCertificate: crt, ClientKey: key})
		if err := writeKubeconfig(kc[u.name], credDir+"/"+u.name+".kubeconfig", 0o600); err != nil {
			return err
		}
	}
	// The server's kubelet joins as an agent's does: by TLS bootstrap with
	// the bootstrap token (see bootstrap.go).
	boot := kubeconfig(local, caPEM, false, &clientcmdapi.AuthInfo{Token: bootstrapTokenString(c.token)})
	if err := writeKubeconfig(boot, credDir+"/kubelet-bootstrap.kubeconfig", 0o600); err != nil {
		return err
	}
	// The kubeconfigs for people and k3d carry their credentials inline:
	// k3d copies $K3S_KUBECONFIG_OUTPUT out of the container.
	admin, err := inlineAdmin(p, local, caPEM)
	if err != nil {
		return err
	}
	mode, err := kubeconfigMode(c.kubeconfigMode)
	if err != nil {
		return err
	}
	for _, path := range []string{kubeconfigPath, c.kubeconfigOutput} {
		if path == "" {
			continue
		}
		if err := writeKubeconfig(admin, path, mode); err != nil {
			return err
		}
		log.Info("wrote kubeconfig", "path", path)
	}
	cs, err := clientFor(kc["admin"])
	if err != nil {
		return err
	}
	// The API server's credential towards the kubelets (logs, exec, port
	// forwarding); the kubelets accept it by the cluster CA.
	kubeletClient, kubeletClientKey, err := p.issue(leaf{name: "client-kube-apiserver", commonName: "system:kube-apiserver-kubelet-client", organization: []string{"system:masters"}})
	if err != nil {
		return err
	}

	g := newGroup(log, out)
	tls := tlsFiles{
		serving: serving, servingKey: servingKey, requestHeaderCA: rh.caPath, proxyClient: proxyClient, proxyClientKey: proxyClientKey, authnConfig: authnConfig,
		kubeletClient: kubeletClient, kubeletClientKey: kubeletClientKey,
	}
	if err := bringUp(ctx, log, g, cs, c, name, ips, tls, deployCoreDNS); err != nil {
		g.stop()
		return err
	}
	return g.wait(ctx)
}

// tlsFiles are the API server's certificates and credentials files.
type tlsFiles struct {
	serving, servingKey         string
	requestHeaderCA             string
	proxyClient, proxyClientKey string
	authnConfig                 string // --authentication-config
	kubeletClient               string
	kubeletClientKey            string
}

// controlPlane returns the command lines of etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler: k3s's choices where they
// matter here, with the --*-arg values applied.
func controlPlane(c config, ip net.IP, f tlsFiles) (etcd, apiserver, controllerManager, scheduler []string) {
	const member = "lab-k3s-standin" // the same at every start: it is in the data
	etcd = componentArgs([]string{
		"name=" + member,
		"data-dir=" + etcdDataDir,
		"listen-client-urls=http://127.0.0.1:2379",
		"advertise-client-urls=http://127.0.0.1:2379",
		"listen-peer-urls=http://127.0.0.1:2380",
		"initial-advertise-peer-urls=http://127.0.0.1:2380",
		"initial-cluster=" + member + "=http://127.0.0.1:2380",
	}, c.etcdArgs)
	apiserver = componentArgs([]string{
		"advertise-address=" + ip.String(),
		"bind-address=0.0.0.0",
		"secure-port=" + strconv.Itoa(apiPort),
		"etcd-servers=http://127.0.0.1:2379",
		"allow-privileged=true",
		"authentication-config=" + f.authnConfig,
		"authorization-mode=Node,RBAC",
		"client-ca-file=" + tlsDir + "/ca.crt",
		"enable-admission-plugins=NodeRestriction",
		"service-account-issuer=https://kubernetes.default.svc." + clusterDomain,
		"service-account-key-file=" + tlsDir + "/service.key",
		"service-account-signing-key-file=" + tlsDir + "/service.key",
		"api-audiences=https://kubernetes.default.svc." + clusterDomain + ",k3s",
		"service-cluster-ip-range=" + serviceCIDR,
		"service-node-port-range=30000-32767",
		"tls-cert-file=" + f.serving,
		"tls-private-key-file=" + f.servingKey,
		"enable-bootstrap-token-auth=true",
		"requestheader-client-ca-file=" + f.requestHeaderCA,
		"requestheader-allowed-names=system:auth-proxy",
		"requestheader-extra-headers-prefix=X-Remote-Extra-",
		"requestheader-group-headers=X-Remote-Group",
		"requestheader-username-headers=X-Remote-User",
		"proxy-client-cert-file=" + f.proxyClient,
		"proxy-client-key-file=" + f.proxyClientKey,
		"kubelet-client-certificate=" + f.kubeletClient,
		"kubelet-client-key=" + f.kubeletClientKey,
		"kubelet-certificate-authority=" + tlsDir + "/ca.crt",
		"kubelet-preferred-address-types=InternalIP,Hostname",
		"profiling=false",
	}, c.apiserverArgs)
	controllerManager = componentArgs([]string{
		"kubeconfig=" + credDir + "/controller.kubeconfig",
		"authentication-kubeconfig=" + credDir + "/controller.kubeconfig",
		"authorization-kubeconfig=" + credDir + "/controller.kubeconfig",
		"bind-address=127.0.0.1",
		"secure-port=10257",
		"leader-elect=false",
		// The bootstrap tokens' controllers, off by default: the
		// signatures of cluster-info and the removal of expired tokens.
		"controllers=*,bootstrapsigner,tokencleaner",
		"allocate-node-cidrs=true",
		"cluster-cidr=" + clusterCIDR,
		"service-cluster-ip-range=" + serviceCIDR,
		"cluster-signing-cert-file=" + tlsDir + "/ca.crt",
		"cluster-signing-key-file=" + tlsDir + "/ca.key",
		"root-ca-file=" + tlsDir + "/ca.crt",
		"service-account-private-key-file=" + tlsDir + "/service.key",
		"use-service-account-credentials=true",
		"configure-cloud-routes=false",
		"profiling=false",
	}, c.controllerManagerArgs)
	scheduler = componentArgs([]string{
		"kubeconfig=" + credDir + "/scheduler.kubeconfig",
		"authentication-kubeconfig=" + credDir + "/scheduler.kubeconfig",
		"authorization-kubeconfig=" + credDir + "/scheduler.kubeconfig",
		"bind-address=127.0.0.1",
		"secure-port=10259",
		"leader-elect=false",
		"profiling=false",
	}, c.schedulerArgs)
	return etcd, apiserver, controllerManager, scheduler
}

// bringUp starts etcd and kube-apiserver, then, once the API is ready (its
// RBAC roles bootstrapped), the controllers and the scheduler; it registers
// the server's Node, starts its containerd, kubelet and kube-proxy, and logs
// k3d's ready messages once they are true.
func bringUp(ctx context.Context, log *slog.Logger, g *group, cs kubernetes.Interface, c config, name string, ips []net.IP, tls tlsFiles, deployCoreDNS bool) error {
	etcd, apiserver, controllerManager, scheduler := controlPlane(c, ips[0], tls)
	if err := g.start("etcd", etcd, os.Environ()); err != nil {
		return err
	}
	if err := g.start("kube-apiserver", apiserver, os.Environ()); err != nil {
		return err
	}
	log.Info("waiting for kube-apiserver", "url", "https://127.0.0.1:"+strconv.Itoa(apiPort))
	if err := waitAPI(ctx, g, cs); err != nil {
		return err
	}
	log.Info("kube-apiserver is ready")
	if err := setUpBootstrap(ctx, log, cs, c.token, "https://"+net.JoinHostPort(ips[0].String(), strconv.Itoa(apiPort)), tlsDir+"/ca.crt"); err != nil {
		return err
	}
	if err := g.start("kube-controller-manager", controllerManager, os.Environ()); err != nil {
		return err
	}
	if err := g.start("kube-scheduler", scheduler, os.Environ()); err != nil {
		return err
	}
	if deployCoreDNS {
		if err := setClusterDNSConfig(ctx, log, cs); err != nil {
			return err
		}
	}
	// The add-ons (CoreDNS, metrics-server, local-path) are deployed from
	// the manifests directory in the background; the server does not wait
	// for them.
	if err := startDeployer(ctx, log, manifestsDir, credDir+"/admin.kubeconfig"); err != nil {
		return err
	}
	started := time.Now()
	creds := nodeCreds{bootstrapKubeconfig: credDir + "/kubelet-bootstrap.kubeconfig", kubeProxyKubeconfig: credDir + "/kube-proxy.kubeconfig", clientCA: tlsDir + "/ca.crt"}
	if err := runKubelet(ctx, log, g, cs, c, name, ips, creds); err != nil {
		return err
	}
	if err := waitNodeReady(ctx, g, cs, name, started); err != nil {
		return err
	}
	log.Info("k3s is up and running")
	return nil
}

// setClusterDNSConfig creates kube-system/cluster-dns as k3s does and logs
// what k3s logs, which k3d waits for before it rewrites coredns.yaml.
func setClusterDNSConfig(ctx context.Context, log *slog.Logger, cs kubernetes.Interface) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-dns", Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{"clusterDNS": clusterDNS, "clusterDomain": clusterDomain},
	}
	_, err := cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		log.Info("Cluster dns configmap already exists")
	case err != nil:
		return fmt.Errorf("create the cluster-dns configmap: %w", err)
	default:
		log.Info("Cluster dns configmap has been set successfully")
	}
	return nil
}

// servingLeaf is the API server's serving certificate: every name and
// address the API is reached by from the host (through k3d's load balancer),
// the Docker network and the cluster.
func servingLeaf(host, name string, ips []net.IP, sans []string) leaf {
	l := leaf{
		name:       "serving-kube-apiserver",
		commonName: "kube-apiserver",
		server:     true,
		dnsNames: []string{
			"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain,
			"localhost", host,
		},
		ips: append([]net.IP{net.ParseIP("127.0.0.1").To4(), net.ParseIP(apiServiceIP).To4()}, ips...),
	}
	if name != host {
		l.dnsNames = append(l.dnsNames, name)
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			if ip4 := ip.To4(); ip4 != nil {
				ip = ip4
			}
			if !slices.ContainsFunc(l.ips, ip.Equal) {
				l.ips = append(l.ips, ip)
			}
		} else if !slices.Contains(l.dnsNames, s) {
			l.dnsNames = append(l.dnsNames, s)
		}
	}
	return l
}

// inlineAdmin returns the admin kubeconfig with the credentials embedded.
func inlineAdmin(p *pki, server string, caPEM []byte) (*clientcmdapi.Config, error) {
	crt, err := os.ReadFile(filepath.Join(p.dir, "client-admin.crt"))
	if err != nil {
		return nil, fmt.Errorf("read the admin certificate: %w", err)
	}
	key, err := os.ReadFile(filepath.Join(p.dir, "client-admin.key"))
	if err != nil {
		return nil, fmt.Errorf("read the admin key: %w", err)
	}
	return kubeconfig(server, caPEM, false, &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}), nil
}

// kubeconfigMode parses --write-kubeconfig-mode (octal, default 0600).
func kubeconfigMode(s string) (os.FileMode, error) {
	if s == "" {
		return 0o600, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("--write-kubeconfig-mode %q: want an octal file mode such as 0644", s)
	}
	return os.FileMode(m), nil
}
