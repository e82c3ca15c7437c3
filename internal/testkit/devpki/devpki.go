// Package devpki is a tiny certificate authority for tests, the e2e suite and
// the local demo. It issues SPIFFE-style leaves
// (spiffe://<trust-domain>/<role>/<name>) and CRLs, and can also issue the
// deliberately broken certificates that the transport tests must refuse:
// several URI SANs, CA bits on a leaf, expired or not-yet-valid leaves.
//
// It is not meant for production: keys live in memory and on the paths the
// caller names, and nothing is hardware-backed.
package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is an in-memory certificate authority.
type CA struct {
	TrustDomain string
	Cert        *x509.Certificate
	Key         crypto.Signer
	// CertPEM is the PEM encoding of Cert, suitable for a CA bundle file.
	CertPEM []byte
	crlNum  int64
}

// NewCA makes a self-signed ECDSA P-256 CA valid for 24 hours.
func NewCA(trustDomain string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "keyshare dev CA " + trustDomain, Organization: []string{"keyshare"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("failed to self-sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate: %w", err)
	}
	return &CA{
		TrustDomain: trustDomain,
		Cert:        cert,
		Key:         key,
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WriteCA writes the CA certificate in PEM to path with mode 0644.
func (ca *CA) WriteCA(path string) error {
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("failed to write CA certificate %s: %w", path, err)
	}
	return nil
}

// ID returns spiffe://<trust-domain>/<role>/<name>.
func (ca *CA) ID(role, name string) string {
	return "spiffe://" + ca.TrustDomain + "/" + role + "/" + name
}

// LeafOptions describes a leaf certificate. The zero value of each field
// picks a sane default.
type LeafOptions struct {
	// URIs are the URI SANs. Normally exactly one SPIFFE ID.
	URIs []string
	// IPs and DNSNames are extra SANs, needed for server certificates.
	IPs      []net.IP
	DNSNames []string
	// NotBefore and NotAfter default to one hour ago and 24 hours from now.
	NotBefore, NotAfter time.Time
	// IsCA sets CA basic constraints on the leaf (a misuse the transport
	// must refuse).
	IsCA bool
	// CommonName defaults to the first URI.
	CommonName string
}

// Leaf is an issued certificate and its private key.
type Leaf struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// Issue signs a leaf for opts.
func (ca *CA) Issue(opts LeafOptions) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate leaf key: %w", err)
	}
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(24 * time.Hour)
	}
	var uris []*url.URL
	for _, s := range opts.URIs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("failed to parse URI SAN %q: %w", s, err)
		}
		uris = append(uris, u)
	}
	cn := opts.CommonName
	if cn == "" && len(opts.URIs) > 0 {
		cn = opts.URIs[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		URIs:         uris,
		IPAddresses:  opts.IPs,
		DNSNames:     opts.DNSNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if opts.IsCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign leaf: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse leaf: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal leaf key: %w", err)
	}
	return &Leaf{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// IssueID issues a normal leaf for spiffe://<td>/<role>/<name>, valid as a
// server for the given IPs (and "localhost").
func (ca *CA) IssueID(role, name string, ips ...net.IP) (*Leaf, error) {
	return ca.Issue(LeafOptions{URIs: []string{ca.ID(role, name)}, IPs: ips, DNSNames: []string{"localhost"}})
}

// TLSCertificate returns the leaf as a tls.Certificate.
func (l *Leaf) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
}

// WriteFiles writes <dir>/<base>.crt (0644) and <dir>/<base>.key (0600) and
// returns their paths. Existing files are replaced atomically, so a process
// watching them never reads a half-written file.
func (l *Leaf) WriteFiles(dir, base string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, base+".crt")
	keyPath = filepath.Join(dir, base+".key")
	if err := writeAtomic(keyPath, l.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certPath, l.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// CRL returns a PEM-encoded CRL, signed by the CA, revoking the given leaves.
func (ca *CA) CRL(revoked ...*x509.Certificate) ([]byte, error) {
	ca.crlNum++
	now := time.Now()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(ca.crlNum),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// WriteCRL writes a CRL revoking the given leaves to path, atomically.
func (ca *CA) WriteCRL(path string, revoked ...*x509.Certificate) error {
	b, err := ca.CRL(revoked...)
	if err != nil {
		return err
	}
	return writeAtomic(path, b, 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("failed to write %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("failed to chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ crashes
		// the program instead), so this is unreachable.
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}
