package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The files of a CA folder.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CRLFile    = "crl.pem"
)

// DefaultCADays is the CA's validity when CAOptions.Days is 0: ten years,
// since replacing a CA means reissuing every certificate.
const DefaultCADays = 3650

// CAOptions describe a new deployment CA.
type CAOptions struct {
	// TrustDomain is the deployment's SPIFFE trust domain, e.g.
	// keyshare.example. Required.
	TrustDomain string
	// KeyType is KeyECDSAP256 (default) or KeyEd25519.
	KeyType KeyType
	// Days is the validity (DefaultCADays if 0).
	Days int
	// CommonName defaults to "keyshare CA <trust-domain>".
	CommonName string
	// NoNameConstraint leaves out the name constraint that permits only
	// URIs in the trust domain. Leave it false unless a client of the CA
	// cannot handle name constraints.
	NoNameConstraint bool
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// CA is a loaded deployment CA.
type CA struct {
	Dir         string
	Cert        *x509.Certificate
	Key         crypto.Signer
	TrustDomain spiffeid.TrustDomain
}

// CertPath, KeyPath and CRLPath are the CA's files.
func (ca *CA) CertPath() string { return filepath.Join(ca.Dir, CACertFile) }

// KeyPath is the CA's private key file.
func (ca *CA) KeyPath() string { return filepath.Join(ca.Dir, CAKeyFile) }

// CRLPath is the CA's CRL file.
func (ca *CA) CRLPath() string { return filepath.Join(ca.Dir, CRLFile) }

// CreateCA makes a new CA in dir (created 0755 if missing) and writes
// ca.crt (0644) and ca.key (0600). It refuses to run if either file exists.
func CreateCA(dir string, opts CAOptions) (*CA, error) {
	if opts.TrustDomain == "" {
		return nil, invalidf("no trust domain given; pass one such as keyshare.example")
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, invalidf("trust domain %q is not usable (want a lowercase name such as keyshare.example): %w", opts.TrustDomain, err)
	}
	if opts.Days, err = validityDays("CA", opts.Days, DefaultCADays); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create CA folder %s: %w", dir, err)
	}
	ca := &CA{Dir: dir, TrustDomain: td}
	if err := refuseExisting(ca.KeyPath(), ca.CertPath()); err != nil {
		return nil, err
	}
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	cn := opts.CommonName
	if cn == "" {
		cn = "keyshare CA " + td.Name()
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := clock(opts.Now)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"keyshare"}},
		NotBefore:             t.Add(-5 * time.Minute), // tolerate small clock skew
		NotAfter:              t.AddDate(0, 0, opts.Days),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // leaves only, no intermediates
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	if !opts.NoNameConstraint {
		tmpl.PermittedURIDomains = []string{td.Name()}
		tmpl.PermittedDNSDomainsCritical = true // marks the whole extension critical (RFC 5280)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("failed to self-sign the CA certificate: %w", err)
	}
	if ca.Cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("failed to parse the new CA certificate: %w", err)
	}
	ca.Key = key
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a folder with a certificate but no key is useless,
	// one with a key and no certificate can be finished by hand.
	if err := createFile(ca.KeyPath(), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := createFile(ca.CertPath(), pemCert(der), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadCA reads ca.crt and ca.key from dir. The key must be readable by its
// owner only and belong to the certificate, and the certificate must be a CA
// allowed to sign certificates and CRLs. trustDomain, if not empty,
// overrides the trust domain found in the certificate (needed for a CA made
// elsewhere that names none).
func LoadCA(dir, trustDomain string) (*CA, error) {
	ca := &CA{Dir: dir}
	certPEM, err := os.ReadFile(ca.CertPath())
	if err != nil {
		return nil, fmt.Errorf("failed to read CA certificate %s (make one with 'unsealer tls ca create --dir %s'): %w", ca.CertPath(), dir, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate %s holds no PEM CERTIFICATE block", ca.CertPath())
	}
	if ca.Cert, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate %s: %w", ca.CertPath(), err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate %s is not a CA allowed to sign certificates", ca.CertPath())
	}
	keyPEM, err := readPrivate(ca.KeyPath())
	if err != nil {
		return nil, err
	}
	if ca.Key, err = parseKey(ca.KeyPath(), keyPEM); err != nil {
		return nil, err
	}
	if !publicKeysEqual(ca.Key.Public(), ca.Cert.PublicKey) {
		return nil, fmt.Errorf("key %s does not belong to CA certificate %s", ca.KeyPath(), ca.CertPath())
	}
	if ca.TrustDomain, err = caTrustDomain(ca.Cert, trustDomain); err != nil && !errors.Is(err, errNoTrustDomain) {
		return nil, fmt.Errorf("CA %s: %w", ca.CertPath(), err)
	}
	// A CA that names no trust domain can still revoke; Issue asks for one.
	return ca, nil
}

// caTrustDomain is override if set, else the spiffe:// URI SAN of cert,
// else its only permitted URI domain.
func caTrustDomain(cert *x509.Certificate, override string) (spiffeid.TrustDomain, error) {
	if override != "" {
		td, err := spiffeid.TrustDomainFromString(override)
		if err != nil {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q is not usable: %w", override, err)
		}
		if len(cert.PermittedURIDomains) > 0 && !matchesURIDomain(td.Name(), cert.PermittedURIDomains) {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q is outside the CA's name constraints %v", override, cert.PermittedURIDomains)
		}
		return td, nil
	}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			return spiffeid.TrustDomainFromString(u.Host)
		}
	}
	if len(cert.PermittedURIDomains) == 1 {
		return spiffeid.TrustDomainFromString(cert.PermittedURIDomains[0])
	}
	return spiffeid.TrustDomain{}, errNoTrustDomain
}

// errNoTrustDomain is returned by caTrustDomain for a CA that names none.
var errNoTrustDomain = errors.New("the CA names no trust domain (no spiffe:// URI SAN, no single URI name constraint); pass --trust-domain")

// matchesURIDomain mirrors crypto/x509's URI constraint check for a host:
// equal to a constraint, or below one that starts with a dot.
func matchesURIDomain(host string, permitted []string) bool {
	for _, c := range permitted {
		if host == c || (len(c) > 0 && c[0] == '.' && len(host) > len(c) && host[len(host)-len(c):] == c) {
			return true
		}
	}
	return false
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// randomSerial is a positive random serial of at most 128 bits, as CAs
// should use (CA/B forum: at least 64 bits of randomness).
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("failed to draw a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// readPEMCerts parses every CERTIFICATE block of b.
func readPEMCerts(path string, b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse certificate in %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}

// clock returns now(), the options' clock, or the time of day if it is nil.
func clock(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// validityDays is days, or def if days is 0; what names the validity in
// the error for a negative one.
func validityDays(what string, days, def int) (int, error) {
	if days < 0 {
		return 0, invalidf("%s validity of %d days is not positive", what, days)
	}
	if days == 0 {
		return def, nil
	}
	return days, nil
}
