package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// frontProxyClient is the name the API server's aggregator presents to the
// extension API servers (metrics-server), which trust it through the
// requestheader CA that the API server publishes in kube-system's
// extension-apiserver-authentication ConfigMap.
const frontProxyClient = "front-proxy-client"

// realNodeFlags sets the API server up for real kubelets and an aggregated
// metrics API: kubelets reached by InternalIP (their Hostname resolves
// nowhere), aggregated requests sent to the endpoints' addresses (the
// metrics-server of internal/realnode runs beside the cluster, not behind a
// ClusterIP the host can reach), and a front-proxy CA and client
// certificate, made here, for those requests.
func realNodeFlags(args *envtest.Arguments, workDir string) error {
	dir := filepath.Join(workDir, "front-proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make the front-proxy certificates: %w", err)
	}
	ca, caKey, err := newCert(nil, nil, "lab-test front-proxy CA", true)
	if err != nil {
		return err
	}
	client, clientKey, err := newCert(ca, caKey, frontProxyClient, false)
	if err != nil {
		return err
	}
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		return fmt.Errorf("make the front-proxy certificates: %w", err)
	}
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{caFile, "CERTIFICATE", ca.Raw}, {certFile, "CERTIFICATE", client.Raw}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	args.
		Set("kubelet-preferred-address-types", "InternalIP").
		Set("enable-aggregator-routing", "true").
		Set("requestheader-client-ca-file", caFile).
		Set("requestheader-allowed-names", frontProxyClient).
		Set("requestheader-username-headers", "X-Remote-User").
		Set("requestheader-group-headers", "X-Remote-Group").
		Set("requestheader-extra-headers-prefix", "X-Remote-Extra-").
		Set("proxy-client-cert-file", certFile).
		Set("proxy-client-key-file", keyFile)
	return nil
}

// newCert makes a certificate for name, signed by parent (self-signed when
// parent is nil): a CA, or a client certificate.
func newCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make a key for %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("make a serial number for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("make the certificate of %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("read the certificate of %s: %w", name, err)
	}
	return cert, key, nil
}
