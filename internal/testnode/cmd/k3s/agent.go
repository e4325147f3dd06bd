package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// The agent's credentials: the server URL, at first with no credential and
// without the server's CA (join: reading cluster-info), then the bootstrap
// token with the CA (the kubelet's bootstrap); kube-proxy's client
// certificate.
const (
	joinKubeconfig      = agentDir + "/join.kubeconfig"
	bootstrapKubeconfig = agentDir + "/bootstrap.kubeconfig"
	kubeProxyKubeconfig = agentDir + "/kube-proxy.kubeconfig"
	agentClusterCA      = agentDir + "/server-ca.crt"
)

// runAgent runs a k3s agent: it waits for the server, gets kube-proxy's
// credential and runs containerd, the kubelet (which joins by TLS bootstrap
// and registers its Node) and kube-proxy. It logs "Successfully registered
// node" (k3d's ready message for agents) once its Node is Ready and its
// kubelet can serve the API server.
//
// The agent finds the cluster CA as kubeadm's join does: it reads
// kube-public/cluster-info anonymously, without verifying the server, and
// accepts the CA there once kube-controller-manager's bootstrapsigner has
// signed it with the bootstrap token derived from the cluster token
// (bootstrapToken), which a server without the cluster token cannot do.
// Only then does it send the token, to the server it verifies with that CA.
// (A k3s agent checks the server CA against the hash in a K10… token; k3d's
// tokens are plain random strings.)
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
	join := kubeconfig(c.serverURL, nil, true, &clientcmdapi.AuthInfo{})
	if err := writeKubeconfig(join, joinKubeconfig, 0o600); err != nil {
		return err
	}
	cs, err := clientFor(join)
	if err != nil {
		return err
	}

	g := newGroup(log, out)
	log.Info("waiting for the server's signed cluster-info", "url", c.serverURL)
	start := time.Now()
	id, secret := bootstrapToken(c.token)
	caPEM, err := waitClusterCA(ctx, log, g, cs, id, secret, agentClusterCA)
	if err != nil {
		return err
	}
	log.Info("the server proved that it knows the token", "url", c.serverURL, "after", time.Since(start).Round(time.Millisecond))
	token := &clientcmdapi.AuthInfo{Token: id + "." + secret}
	boot := kubeconfig(c.serverURL, caPEM, false, token)
	if err := writeKubeconfig(boot, bootstrapKubeconfig, 0o600); err != nil {
		return err
	}
	if cs, err = clientFor(boot); err != nil {
		return err
	}
	crt, key, err := kubeProxyCert(ctx, cs, caPEM)
	if err != nil {
		return err
	}
	proxy := kubeconfig(c.serverURL, caPEM, false, &clientcmdapi.AuthInfo{ClientCertificate: crt, ClientKey: key})
	if err := writeKubeconfig(proxy, kubeProxyKubeconfig, 0o600); err != nil {
		return err
	}
	if cs, err = clientFor(proxy); err != nil {
		return err
	}
	started := time.Now()
	creds := nodeCreds{bootstrapKubeconfig: bootstrapKubeconfig, kubeProxyKubeconfig: kubeProxyKubeconfig, clientCA: agentClusterCA}
	if err := runKubelet(ctx, log, g, cs, c, name, ips, creds); err != nil {
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

// waitClusterCA waits until kube-public/cluster-info is signed with the
// bootstrap token (id, secret) and writes the cluster CA it names to path:
// the agent verifies the API server with it, and its kubelet the API
// server's client certificate.
func waitClusterCA(ctx context.Context, log *slog.Logger, g *group, cs kubernetes.Interface, id, secret, path string) ([]byte, error) {
	var ca []byte
	var last string
	err := poll(ctx, g, 500*time.Millisecond, func(ctx context.Context) bool {
		cm, err := cs.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err == nil {
			ca, err = signedClusterCA(cm, id, secret)
		}
		if err != nil && err.Error() != last {
			last = err.Error()
			if !errors.Is(err, errNotSigned) && !apierrors.IsNotFound(err) {
				log.Warn("cluster-info not accepted (yet)", "err", err)
			}
		}
		return err == nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for a signed cluster CA (kube-public/cluster-info; last: %s): %w", last, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("write the cluster CA: %w", err)
	}
	if err := os.WriteFile(path, ca, 0o644); err != nil {
		return nil, fmt.Errorf("write the cluster CA: %w", err)
	}
	return ca, nil
}

// kubeProxyCert returns the paths of kube-proxy's client certificate and
// key (system:kube-proxy, which the API server's default policy binds to
// system:node-proxier): a CertificateSigningRequest for
// kubernetes.io/kube-apiserver-client, asked with the bootstrap token (cs)
// and approved by the server (approveCSRs), as a k3s agent gets this
// certificate from its server with the cluster token. A certificate from an
// earlier start is kept while it is the cluster CA's (caPEM) and not close
// to expiry.
func kubeProxyCert(ctx context.Context, cs kubernetes.Interface, caPEM []byte) (certPath, keyPath string, err error) {
	certPath, keyPath = agentDir+"/client-kube-proxy.crt", agentDir+"/client-kube-proxy.key"
	key, err := loadOrGenerateKey(keyPath)
	if err != nil {
		return "", "", err
	}
	l := leaf{commonName: kubeProxyUser}
	if certs, err := cert.CertsFromFile(certPath); err == nil && len(certs) > 0 && certFits(certs[0], l, key.Public()) && signedBy(certs[0], caPEM) {
		return certPath, keyPath, nil
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: l.commonName}}, key)
	if err != nil {
		return "", "", fmt.Errorf("make kube-proxy's certificate request: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	usages := []certsv1.KeyUsage{certsv1.UsageDigitalSignature, certsv1.UsageClientAuth}
	reqName, reqUID, err := csr.RequestCertificateWithContext(ctx, cs, csrPEM, "", certsv1.KubeAPIServerClientSignerName, nil, usages, key)
	if err != nil {
		return "", "", fmt.Errorf("request kube-proxy's client certificate: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	crt, err := csr.WaitForCertificate(wctx, cs, reqName, reqUID)
	if err != nil {
		return "", "", fmt.Errorf("wait for kube-proxy's client certificate (%s): %w", reqName, err)
	}
	if err := cert.WriteCert(certPath, crt); err != nil {
		return "", "", fmt.Errorf("write kube-proxy's client certificate: %w", err)
	}
	return certPath, keyPath, nil
}

// signedBy reports whether c is signed by one of the certificates in caPEM.
func signedBy(c *x509.Certificate, caPEM []byte) bool {
	cas, err := cert.ParseCertsPEM(caPEM)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil })
}
