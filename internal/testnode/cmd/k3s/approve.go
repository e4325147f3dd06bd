package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kubeProxyUser is kube-proxy's identity, which the API server's default
// policy binds to system:node-proxier.
const kubeProxyUser = "system:kube-proxy"

// approveInterval is how often the server looks for requests to approve.
const approveInterval = time.Second

// approveCSRs approves, until ctx ends, the certificate requests that
// kube-controller-manager's csrapproving controller leaves alone and a k3s
// server answers itself: the kubelets' serving certificates
// (kubernetes.io/kubelet-serving, for the addresses their Node reports) and
// kube-proxy's client certificate on the agents (kubernetes.io/kube-apiserver-client,
// CN system:kube-proxy, asked with the bootstrap token; a k3s agent gets that
// certificate from its server with the cluster token too). Everything else
// it leaves pending, and says so once; it looks at a pending request again
// every time (its Node may report its addresses only after the kubelet asked).
func approveCSRs(ctx context.Context, log *slog.Logger, cs kubernetes.Interface) {
	told := map[string]bool{}
	for {
		list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				req := &list.Items[i]
				if decided(req) {
					continue
				}
				ok, why := reviewCSR(req, nodeOf(ctx, cs, req))
				if !ok {
					if why != "" && !told[req.Name] {
						told[req.Name] = true
						log.Info("left a certificate request pending", "csr", req.Name, "signer", req.Spec.SignerName, "requestor", req.Spec.Username, "reason", why)
					}
					continue
				}
				if err := approve(ctx, cs, req, why); err != nil {
					log.Warn("could not approve a certificate request", "csr", req.Name, "err", err)
					continue
				}
				log.Info("approved a certificate request", "csr", req.Name, "signer", req.Spec.SignerName, "requestor", req.Spec.Username, "reason", why)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(approveInterval):
		}
	}
}

// decided reports whether req was approved or denied.
func decided(req *certsv1.CertificateSigningRequest) bool {
	return slices.ContainsFunc(req.Status.Conditions, func(c certsv1.CertificateSigningRequestCondition) bool {
		return c.Type == certsv1.CertificateApproved || c.Type == certsv1.CertificateDenied
	})
}

// nodeOf returns the Node that a node's request names as its requestor, or
// nil (not a node's request, or its Node is not there yet).
func nodeOf(ctx context.Context, cs kubernetes.Interface, req *certsv1.CertificateSigningRequest) *corev1.Node {
	name, ok := strings.CutPrefix(req.Spec.Username, "system:node:")
	if !ok || req.Spec.SignerName != certsv1.KubeletServingSignerName {
		return nil
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return n
}

// reviewCSR says whether the server approves req and why: ok with the
// reason to record, or not with why not ("" when the request is none of the
// server's business). node is the requesting node's Node, for a kubelet's
// serving certificate.
func reviewCSR(req *certsv1.CertificateSigningRequest, node *corev1.Node) (ok bool, reason string) {
	switch req.Spec.SignerName {
	case certsv1.KubeletServingSignerName:
		if err := servingRequestFits(req, node); err != nil {
			return false, err.Error()
		}
		return true, "the serving certificate of node " + node.Name + " for the addresses it reports"
	case certsv1.KubeAPIServerClientSignerName:
		if !slices.Contains(req.Spec.Groups, bootstrapGroup) {
			return false, "" // not a joining node's
		}
		if err := kubeProxyRequestFits(req); err != nil {
			return false, err.Error()
		}
		return true, "kube-proxy's client certificate, asked by a node with the bootstrap token"
	}
	return false, ""
}

// servingRequestFits checks a kubelet's serving certificate request: by the
// node itself, for its name and for addresses that its Node reports, with
// serving usages only.
func servingRequestFits(req *certsv1.CertificateSigningRequest, node *corev1.Node) error {
	if node == nil {
		return fmt.Errorf("requestor %q is no registered node", req.Spec.Username)
	}
	user := "system:node:" + node.Name
	if req.Spec.Username != user || !slices.Contains(req.Spec.Groups, "system:nodes") {
		return fmt.Errorf("requested by %q, not by node %s itself", req.Spec.Username, node.Name)
	}
	cr, err := parseCSR(req)
	if err != nil {
		return err
	}
	if cr.Subject.CommonName != user || !slices.Equal(cr.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %q, want CN %s, O system:nodes", cr.Subject, user)
	}
	if err := usagesFit(req.Spec.Usages, certsv1.UsageServerAuth); err != nil {
		return err
	}
	if len(cr.EmailAddresses) > 0 || len(cr.URIs) > 0 || len(cr.DNSNames)+len(cr.IPAddresses) == 0 {
		return errors.New("want DNS names or IP addresses only, and at least one")
	}
	var names, ips []string
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			names = append(names, a.Address)
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			ips = append(ips, a.Address)
		}
	}
	for _, n := range cr.DNSNames {
		if !slices.Contains(names, n) {
			return fmt.Errorf("DNS name %q is none of node %s's addresses %v", n, node.Name, names)
		}
	}
	for _, ip := range cr.IPAddresses {
		if !slices.Contains(ips, ip.String()) {
			return fmt.Errorf("IP address %s is none of node %s's addresses %v", ip, node.Name, ips)
		}
	}
	return nil
}

// kubeProxyRequestFits checks a request for kube-proxy's client
// certificate: its user name and nothing else.
func kubeProxyRequestFits(req *certsv1.CertificateSigningRequest) error {
	cr, err := parseCSR(req)
	if err != nil {
		return err
	}
	if cr.Subject.CommonName != kubeProxyUser || len(cr.Subject.Organization) > 0 {
		return fmt.Errorf("subject %q, want CN %s and no organization", cr.Subject, kubeProxyUser)
	}
	if len(cr.DNSNames)+len(cr.IPAddresses)+len(cr.EmailAddresses)+len(cr.URIs) > 0 {
		return errors.New("a client certificate names no addresses")
	}
	return usagesFit(req.Spec.Usages, certsv1.UsageClientAuth)
}

// usagesFit checks that usages include want and are otherwise only digital
// signature and key encipherment.
func usagesFit(usages []certsv1.KeyUsage, want certsv1.KeyUsage) error {
	allowed := []certsv1.KeyUsage{want, certsv1.UsageDigitalSignature, certsv1.UsageKeyEncipherment}
	for _, u := range usages {
		if !slices.Contains(allowed, u) {
			return fmt.Errorf("usage %q, want only %v", u, allowed)
		}
	}
	if !slices.Contains(usages, want) {
		return fmt.Errorf("usages %v lack %q", usages, want)
	}
	return nil
}

func parseCSR(req *certsv1.CertificateSigningRequest) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(req.Spec.Request)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("the request holds no PEM CERTIFICATE REQUEST")
	}
	cr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the request: %w", err)
	}
	if err := cr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request's signature: %w", err)
	}
	return cr, nil
}

// approve records the server's approval of req.
func approve(ctx context.Context, cs kubernetes.Interface, req *certsv1.CertificateSigningRequest, reason string) error {
	req = req.DeepCopy()
	req.Status.Conditions = append(req.Status.Conditions, certsv1.CertificateSigningRequestCondition{
		Type: certsv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "K3sStandinServer", Message: reason,
	})
	_, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, req.Name, req, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("approve %s: %w", req.Name, err)
	}
	return nil
}
