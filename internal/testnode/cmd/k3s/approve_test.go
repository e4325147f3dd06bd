package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"strings"
	"testing"

	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReviewCSR checks which certificate requests the server approves: a
// kubelet's serving certificate by the node itself for the addresses its
// Node reports, kube-proxy's client certificate asked with the bootstrap
// token, and nothing else (node client certificates are
// kube-controller-manager's to approve).
func TestReviewCSR(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	request := func(cn string, org []string, dns []string, ips ...string) []byte {
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: org}, DNSNames: dns}
		for _, ip := range ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	const agentUser = "system:node:k3d-lab-agent-0"
	nodeGroups := []string{"system:nodes", "system:authenticated"}
	bootGroups := []string{"system:bootstrappers", bootstrapGroup, "system:authenticated"}
	serving := []certsv1.KeyUsage{certsv1.UsageDigitalSignature, certsv1.UsageServerAuth}
	client := []certsv1.KeyUsage{certsv1.UsageDigitalSignature, certsv1.UsageClientAuth}
	goodServing := request(agentUser, []string{"system:nodes"}, []string{"k3d-lab-agent-0"}, "172.18.0.3")
	goodProxy := request(kubeProxyUser, nil, nil)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "k3d-lab-agent-0"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "172.18.0.3"}, {Type: corev1.NodeHostName, Address: "k3d-lab-agent-0"},
		}},
	}
	tests := []struct {
		name    string
		signer  string
		user    string
		groups  []string
		usages  []certsv1.KeyUsage
		request []byte
		node    *corev1.Node
		want    bool
		why     string // in the reason
	}{
		{"kubelet serving", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, goodServing, node, true, "serving certificate of node k3d-lab-agent-0"},
		{"serving, Node not registered yet", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, goodServing, nil, false, "no registered node"},
		{"serving, by another node", certsv1.KubeletServingSignerName, "system:node:k3d-lab-agent-1", nodeGroups, serving, goodServing, node, false, "not by node"},
		{"serving, by a bootstrapping node", certsv1.KubeletServingSignerName, "system:bootstrap:abcdef", bootGroups, serving, goodServing, node, false, "not by node"},
		{"serving, subject of another node", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, request("system:node:other", []string{"system:nodes"}, nil, "172.18.0.3"), node, false, "subject"},
		{"serving, foreign IP", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, request(agentUser, []string{"system:nodes"}, nil, "10.0.0.1"), node, false, "IP address 10.0.0.1"},
		{"serving, foreign name", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, request(agentUser, []string{"system:nodes"}, []string{"kubernetes"}), node, false, `DNS name "kubernetes"`},
		{"serving, no names", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, request(agentUser, []string{"system:nodes"}, nil), node, false, "at least one"},
		{"serving, client usage", certsv1.KubeletServingSignerName, agentUser, nodeGroups, append(serving, certsv1.UsageClientAuth), goodServing, node, false, "usage"},
		{"serving, not PEM", certsv1.KubeletServingSignerName, agentUser, nodeGroups, serving, []byte("junk"), node, false, "PEM"},
		{"kube-proxy", certsv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef", bootGroups, client, goodProxy, nil, true, "kube-proxy"},
		{"kube-proxy, not a joining node", certsv1.KubeAPIServerClientSignerName, "alice", []string{"system:authenticated"}, client, goodProxy, nil, false, ""},
		{"client for another user", certsv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef", bootGroups, client, request("system:admin", []string{"system:masters"}, nil), nil, false, "subject"},
		{"kube-proxy with a group", certsv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef", bootGroups, client, request(kubeProxyUser, []string{"system:masters"}, nil), nil, false, "subject"},
		{"kube-proxy, no client usage", certsv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef", bootGroups, []certsv1.KeyUsage{certsv1.UsageDigitalSignature}, goodProxy, nil, false, "lack"},
		{"kube-proxy with an address", certsv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef", bootGroups, client, request(kubeProxyUser, nil, []string{"x"}), nil, false, "no addresses"},
		{"node client: kube-controller-manager's", certsv1.KubeAPIServerClientKubeletSignerName, "system:bootstrap:abcdef", bootGroups, client, request(agentUser, []string{"system:nodes"}, nil), nil, false, ""},
		{"another signer", "example.com/signer", agentUser, nodeGroups, client, goodProxy, node, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &certsv1.CertificateSigningRequest{Spec: certsv1.CertificateSigningRequestSpec{
				SignerName: tt.signer, Username: tt.user, Groups: tt.groups, Usages: tt.usages, Request: tt.request,
			}}
			ok, why := reviewCSR(req, tt.node)
			if ok != tt.want || !strings.Contains(why, tt.why) || (tt.why == "" && why != "") {
				t.Errorf("reviewCSR = %v, %q; want %v with %q", ok, why, tt.want, tt.why)
			}
		})
	}
}

// TestDecided checks that approved and denied requests are left alone.
func TestDecided(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cond certsv1.RequestConditionType
		want bool
	}{{certsv1.CertificateApproved, true}, {certsv1.CertificateDenied, true}, {certsv1.CertificateFailed, false}, {"", false}} {
		req := &certsv1.CertificateSigningRequest{}
		if tt.cond != "" {
			req.Status.Conditions = []certsv1.CertificateSigningRequestCondition{{Type: tt.cond}}
		}
		if got := decided(req); got != tt.want {
			t.Errorf("decided with condition %q = %v, want %v", tt.cond, got, tt.want)
		}
	}
}
