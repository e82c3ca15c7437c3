package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// keyMaterial is one consistent set of CA bundle, certificate and key.
type keyMaterial struct {
	cert   *tls.Certificate
	id     spiffeid.ID
	role   Role
	bundle *x509bundle.Bundle
	// sum fingerprints the three files, so that a reload of unchanged files
	// is silent.
	sum [sha256.Size]byte
}

// material is what handshakes use. It is immutable once stored in a Source.
type material struct {
	creds *keyMaterial
	// revs is nil when no CRL is configured.
	revs *revocations
	// crlErr is set when a CRL is configured but unusable: every handshake
	// is refused while it is set.
	crlErr error
	crlSum [sha256.Size]byte
}

// usable returns the reason no handshake may proceed, if there is one.
func (m *material) usable() error {
	if m.crlErr != nil {
		return fmt.Errorf("refusing all handshakes until the CRL is fixed: %w", m.crlErr)
	}
	return nil
}

// loadCredentials reads and checks the CA bundle, certificate and key named
// in opts. The certificate must carry a valid keyshare SPIFFE ID, belong to
// opts.TrustDomain if set, and chain to the bundle.
func loadCredentials(opts *Options) (*keyMaterial, error) {
	caPEM, err := os.ReadFile(opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read CA bundle %s: %w", opts.CAFile, err)
	}
	certPEM, err := os.ReadFile(opts.CertFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read certificate %s: %w", opts.CertFile, err)
	}
	keyPEM, err := os.ReadFile(opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read key %s: %w", opts.KeyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load certificate %s with key %s (check both are PEM and belong together): %w",
			opts.CertFile, opts.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("failed to parse certificate %s: %w", opts.CertFile, err)
		}
		cert.Leaf = leaf
	}
	id, role, err := IDFromLeaf(leaf)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", opts.CertFile, err)
	}
	if opts.TrustDomain != "" && id.TrustDomain().Name() != opts.TrustDomain {
		return nil, fmt.Errorf("certificate %s is for trust domain %q, want %q: issue it from this deployment's CA",
			opts.CertFile, id.TrustDomain().Name(), opts.TrustDomain)
	}
	bundle, err := x509bundle.Parse(id.TrustDomain(), caPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA bundle %s (want PEM certificates): %w", opts.CAFile, err)
	}
	if bundle.Empty() {
		return nil, fmt.Errorf("CA bundle %s holds no certificate", opts.CAFile)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         poolOf(bundle.X509Authorities()),
		Intermediates: poolOf(parseChain(cert.Certificate[1:])),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("certificate %s does not verify against CA bundle %s (expired, or from another CA?): %w",
			opts.CertFile, opts.CAFile, err)
	}
	c := &keyMaterial{cert: &cert, id: id, role: role, bundle: bundle}
	h := sha256.New()
	for _, b := range [][]byte{caPEM, certPEM, keyPEM} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	h.Sum(c.sum[:0])
	return c, nil
}

// loadCRL reads the CRL file at path and checks it against the bundle.
func loadCRL(path string, bundle *x509bundle.Bundle) (*revocations, [sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("failed to read CRL %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	revs, err := parseCRL(path, b, bundle.X509Authorities())
	if err != nil {
		return nil, sum, err
	}
	return revs, sum, nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func parseChain(ders [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range ders {
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// errNoCRLIssuer is wrapped when a CRL is signed by no CA in the bundle.
var errNoCRLIssuer = errors.New("CRL is not signed by any CA in the bundle")
