//go:build !race

package testnode_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// checkNodeIdentities checks how the agent joined (TLS bootstrap): its
// kubelet asked for its client certificate with a bootstrap token
// (an approved kubernetes.io/kube-apiserver-client-kubelet request for
// system:node:<agent>), holds it (CN system:node:<agent>, O system:nodes,
// read in the agent's container), and had its serving certificate and
// kube-proxy's certificate approved; the cluster token is no credential
// any more, and the bootstrap token is no administrator; anonymous
// requests read the signed cluster-info and nothing else.
func checkNodeIdentities(ctx context.Context, t *testing.T, docker *client.Client, cs kubernetes.Interface, kubeconfig []byte, agent string) {
	t.Helper()
	nodeUser := "system:node:" + agent
	csrs, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list certificate signing requests: %v", err)
	}
	type want struct{ signer, subject, requestor string }
	found := map[want]bool{}
	for _, r := range csrs.Items {
		if !issued(&r) {
			continue
		}
		b, _ := pem.Decode(r.Spec.Request)
		if b == nil {
			continue
		}
		cr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			continue
		}
		requestor := r.Spec.Username
		if strings.HasPrefix(requestor, "system:bootstrap:") {
			requestor = "system:bootstrap:*"
		}
		found[want{r.Spec.SignerName, cr.Subject.CommonName, requestor}] = true
	}
	t.Logf("issued certificate requests (signer, subject, requestor): %v", slices.Collect(maps.Keys(found)))
	for _, w := range []want{
		{certsv1.KubeAPIServerClientKubeletSignerName, nodeUser, "system:bootstrap:*"},
		{certsv1.KubeletServingSignerName, nodeUser, nodeUser},
		{certsv1.KubeAPIServerClientSignerName, "system:kube-proxy", "system:bootstrap:*"},
	} {
		if !found[w] {
			t.Errorf("no approved and issued request of signer %s for %s by %s; issued: %v", w.signer, w.subject, w.requestor, found)
		}
	}

	for _, c := range []struct{ path, cn, org string }{
		{"/var/lib/kubelet/pki/kubelet-client-current.pem", nodeUser, "system:nodes"},
		{"/var/lib/kubelet/pki/kubelet-server-current.pem", nodeUser, "system:nodes"},
		{"/var/lib/rancher/k3s/agent/client-kube-proxy.crt", "system:kube-proxy", ""},
	} {
		crt := firstCert(t, containerExec(ctx, t, docker, agent, "cat", c.path))
		if crt == nil {
			t.Errorf("%s on %s holds no certificate", c.path, agent)
			continue
		}
		t.Logf("%s on %s: %s, issued by %s", c.path, agent, crt.Subject, crt.Issuer.CommonName)
		if crt.Subject.CommonName != c.cn || strings.Join(crt.Subject.Organization, ",") != c.org {
			t.Errorf("%s on %s is for %q, want CN %s, O %q", c.path, agent, crt.Subject, c.cn, c.org)
		}
	}

	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("read the kubeconfig: %v", err)
	}
	bearer := func(token string) kubernetes.Interface {
		t.Helper()
		c := rest.AnonymousClientConfig(rc)
		c.BearerToken = token
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			t.Fatalf("make a client: %v", err)
		}
		return cs
	}
	clusterToken := containerEnv(ctx, t, docker, agent, "K3S_TOKEN")
	if clusterToken == "" {
		t.Fatalf("%s has no K3S_TOKEN", agent)
	}
	_, plainErr := bearer(clusterToken).CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err := plainErr; !apierrors.IsUnauthorized(err) {
		t.Errorf("listing kube-system's secrets with the cluster token: %v; want Unauthorized (it is no credential)", err)
	}
	secrets, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=bootstrap.kubernetes.io/token"})
	if err != nil || len(secrets.Items) != 1 {
		t.Fatalf("bootstrap token secrets: %d, %v; want 1", len(secrets.Items), err)
	}
	s := secrets.Items[0]
	boot := bearer(string(s.Data["token-id"]) + "." + string(s.Data["token-secret"]))
	_, bootErr := boot.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err := bootErr; !apierrors.IsForbidden(err) {
		t.Errorf("listing kube-system's secrets with the bootstrap token: %v; want Forbidden", err)
	}
	t.Logf("listing kube-system's secrets: with the cluster token %q, with the bootstrap token %q", plainErr, bootErr)
	// Anonymous requests read cluster-info, signed with the bootstrap
	// token (an agent's proof of the server), and nothing else.
	anon, err := kubernetes.NewForConfig(rest.AnonymousClientConfig(rc))
	if err != nil {
		t.Fatalf("make a client: %v", err)
	}
	ci, err := anon.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
	if err != nil || ci.Data["jws-kubeconfig-"+string(s.Data["token-id"])] == "" {
		t.Errorf("cluster-info read anonymously: %v; want it signed with the bootstrap token %s", err, s.Data["token-id"])
	}
	if _, err := anon.CoreV1().ConfigMaps("kube-public").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("listing kube-public's config maps anonymously: %v; want Unauthorized", err)
	}
	masters, err := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list cluster role bindings: %v", err)
	}
	for _, b := range masters.Items {
		for _, sub := range b.Subjects {
			if strings.HasPrefix(sub.Name, "system:bootstrap") && b.RoleRef.Name == "cluster-admin" {
				t.Errorf("%s makes %s a cluster admin", b.Name, sub.Name)
			}
		}
	}
}

// issued reports whether the request was approved and its certificate
// issued.
func issued(r *certsv1.CertificateSigningRequest) bool {
	return len(r.Status.Certificate) > 0 && slices.ContainsFunc(r.Status.Conditions, func(c certsv1.CertificateSigningRequestCondition) bool {
		return c.Type == certsv1.CertificateApproved && c.Status == corev1.ConditionTrue
	})
}

// firstCert returns the first certificate in PEM text, or nil.
func firstCert(t *testing.T, text string) *x509.Certificate {
	t.Helper()
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Errorf("parse a certificate: %v", err)
				return nil
			}
			return c
		}
	}
}

// containerExec runs cmd in the container (docker exec) and returns its
// standard output; it fails the test when cmd fails.
func containerExec(ctx context.Context, t *testing.T, c *client.Client, name string, cmd ...string) string {
	t.Helper()
	ex, err := c.ContainerExecCreate(ctx, name, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("docker exec %s %v: %v", name, cmd, err)
	}
	att, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("docker exec %s %v: %v", name, cmd, err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("docker exec %s %v: %v", name, cmd, err)
	}
	st, err := c.ContainerExecInspect(ctx, ex.ID)
	if err != nil || st.ExitCode != 0 {
		t.Fatalf("docker exec %s %v: exit %d, %v: %s", name, cmd, st.ExitCode, err, stderr.String())
	}
	return stdout.String()
}

// containerEnv returns the value of the container's environment variable
// key, or "".
func containerEnv(ctx context.Context, t *testing.T, c *client.Client, name, key string) string {
	t.Helper()
	info, err := c.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	for _, kv := range info.Config.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// podExec runs cmd in the pod's only container through the API (API
// server → kubelet, as `kubectl exec`) and returns its standard output.
func podExec(ctx context.Context, t *testing.T, kubeconfig []byte, cs kubernetes.Interface, ns, pod string, cmd ...string) string {
	t.Helper()
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("read the kubeconfig: %v", err)
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(rc, "POST", req.URL())
	if err != nil {
		t.Fatalf("exec in %s: %v", pod, err)
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v in %s: %v (%s)", cmd, pod, err, stderr.String())
	}
	return stdout.String()
}
