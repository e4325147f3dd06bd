package main

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// pki is the server's certificate authority and the certificates it issues,
// kept in one directory so that they survive a restart of the container: keys
// and the CA are made once, a leaf certificate again only when what it should
// say changed (e.g. a new SAN) or it is close to expiry.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  crypto.Signer
	caPath string
}

// leaf describes a certificate the CA issues.
type leaf struct {
	name         string // file name stem: <name>.crt and <name>.key
	commonName   string
	organization []string
	dnsNames     []string
	ips          []net.IP
	server       bool // serving certificate, else a client certificate
}

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// loadOrCreatePKI opens the CA in dir, creating it when missing.
func loadOrCreatePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the certificate directory: %w", err)
	}
	key, err := loadOrGenerateKey(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, caKey: key, caPath: filepath.Join(dir, "ca.crt")}
	if certs, err := cert.CertsFromFile(p.caPath); err == nil && len(certs) == 1 && samePublicKey(certs[0].PublicKey, key.Public()) {
		p.ca = certs[0]
		return p, nil
	}
	p.ca, err = cert.NewSelfSignedCACert(cert.Config{CommonName: fmt.Sprintf("k3s-standin-ca@%d", time.Now().Unix())}, key)
	if err != nil {
		return nil, fmt.Errorf("create the CA certificate: %w", err)
	}
	if err := writeCert(p.caPath, p.ca); err != nil {
		return nil, err
	}
	return p, nil
}

// issue returns the paths of l's certificate and key, (re)issuing the
// certificate when the one on disk does not match l.
func (p *pki) issue(l leaf) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(p.dir, l.name+".crt"), filepath.Join(p.dir, l.name+".key")
	key, err := loadOrGenerateKey(keyPath)
	if err != nil {
		return "", "", err
	}
	if certs, err := cert.CertsFromFile(certPath); err == nil && len(certs) == 1 && p.matches(certs[0], l, key) {
		return certPath, keyPath, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", fmt.Errorf("make a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.commonName, Organization: l.organization},
		DNSNames:     l.dnsNames,
		IPAddresses:  l.ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if l.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		return "", "", fmt.Errorf("issue certificate %s: %w", l.name, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", fmt.Errorf("read back certificate %s: %w", l.name, err)
	}
	return certPath, keyPath, writeCert(certPath, c)
}

// matches reports whether c is a certificate of this CA for key that says
// what l says and is not about to expire.
func (p *pki) matches(c *x509.Certificate, l leaf, key crypto.Signer) bool {
	if c.CheckSignatureFrom(p.ca) != nil || !samePublicKey(c.PublicKey, key.Public()) {
		return false
	}
	if time.Until(c.NotAfter) < renewBefore || c.Subject.CommonName != l.commonName || !slices.Equal(c.Subject.Organization, l.organization) {
		return false
	}
	if !slices.Equal(sorted(c.DNSNames), sorted(l.dnsNames)) {
		return false
	}
	var have, want []string
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	for _, ip := range l.ips {
		want = append(want, ip.String())
	}
	return slices.Equal(sorted(have), sorted(want))
}

// caPEM returns the CA certificate in PEM form.
func (p *pki) caPEM() ([]byte, error) {
	b, err := cert.EncodeCertificates(p.ca)
	if err != nil {
		return nil, fmt.Errorf("encode the CA certificate: %w", err)
	}
	return b, nil
}

func loadOrGenerateKey(path string) (crypto.Signer, error) {
	data, _, err := keyutil.LoadOrGenerateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("load or generate key %s: %w", path, err)
	}
	k, err := keyutil.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s cannot sign", path)
	}
	return s, nil
}

func writeCert(path string, c *x509.Certificate) error {
	b, err := cert.EncodeCertificates(c)
	if err != nil {
		return fmt.Errorf("encode certificate %s: %w", path, err)
	}
	if err := cert.WriteCert(path, b); err != nil {
		return fmt.Errorf("write certificate %s: %w", path, err)
	}
	return nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
