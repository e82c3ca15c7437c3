package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Role is the first path segment of a certificate's SPIFFE ID.
type Role string

// The roles Issue knows. The first three are keyshare's peers (see
// pkg/transport/identity); kmsplugin and vault are for the Kubernetes KMS
// plugin and a Vault listener, which never talk to a holder.
const (
	RoleHolder    Role = "holder"
	RoleUnsealer  Role = "unsealer"
	RoleOperator  Role = "operator"
	RoleKMSPlugin Role = "kmsplugin"
	RoleVault     Role = "vault"
)

// Roles lists every role, in the order help texts show them.
var Roles = []Role{RoleHolder, RoleUnsealer, RoleOperator, RoleKMSPlugin, RoleVault}

// ParseRole accepts one of Roles.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", invalidf("unknown role %q; use one of %s", s, rolesList())
}

func rolesList() string {
	var s []string
	for _, r := range Roles {
		s = append(s, string(r))
	}
	return strings.Join(s, ", ")
}

// Usage is what a certificate of a role may do.
type Usage struct {
	Server, Client bool
}

// Usage returns the key usages of r: holders and unsealers serve and dial
// gossip (both), operators and the KMS plugin only dial (client; the plugin
// serves the apiserver on a unix socket, without TLS), a Vault listener only
// serves.
func (r Role) Usage() Usage {
	switch r {
	case RoleHolder, RoleUnsealer:
		return Usage{Server: true, Client: true}
	case RoleOperator, RoleKMSPlugin:
		return Usage{Client: true}
	case RoleVault:
		return Usage{Server: true}
	}
	return Usage{}
}

func (u Usage) extKeyUsage() []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	if u.Server {
		out = append(out, x509.ExtKeyUsageServerAuth)
	}
	if u.Client {
		out = append(out, x509.ExtKeyUsageClientAuth)
	}
	return out
}

// DefaultLeafDays is a leaf's validity when LeafOptions.Days is 0.
const DefaultLeafDays = 365

// LeafOptions describe a leaf certificate.
type LeafOptions struct {
	Role Role
	// Name is the last segment of the SPIFFE ID: letters, digits, '.', '-'
	// and '_' (no '/').
	Name string
	// IPs and DNSNames are the addresses the certificate is valid for as a
	// server (and the source addresses a policy may bind it to).
	IPs      []net.IP
	DNSNames []string
	// Days is the validity (DefaultLeafDays if 0). It may not outlast the CA.
	Days int
	// KeyType is KeyECDSAP256 (default) or KeyEd25519.
	KeyType KeyType
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Leaf is an issued certificate and its key, PEM encoded.
type Leaf struct {
	ID      spiffeid.ID
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// nameRE is a SPIFFE path segment (spiffe-id spec: letters, digits, ".",
// "-", "_"), not made only of dots.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// dnsRE is a host name or a wildcard one: labels of letters, digits and '-'.
var dnsRE = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// InvalidError is returned for a request that can never succeed as given
// (a bad name, role, address or validity): the caller's input is at fault,
// not the machine. Commands exit with the usage code on it.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalidf(format string, args ...any) error {
	return &InvalidError{Err: fmt.Errorf(format, args...)}
}

// ParseIPs parses a comma-separated list of IP addresses (repeated flags
// arrive joined), naming the bad one.
func ParseIPs(values []string) ([]net.IP, error) {
	var out []net.IP
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, invalidf("--ip %q is not an IP address (give addresses such as 10.0.0.11 or fd00::11; host names go in --dns)", s)
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

// validate checks opts against ca and returns the SPIFFE ID.
func (o *LeafOptions) validate(ca *CA) (spiffeid.ID, error) {
	if !o.Role.Usage().Server && !o.Role.Usage().Client {
		return spiffeid.ID{}, invalidf("unknown role %q; use one of %s", o.Role, rolesList())
	}
	switch {
	case o.Name == "":
		return spiffeid.ID{}, invalidf("no --name given; the name becomes the last part of spiffe://<trust-domain>/<role>/<name>")
	case strings.Contains(o.Name, "/"):
		return spiffeid.ID{}, invalidf("--name %q contains '/'; a name is one path segment (letters, digits, '.', '-', '_')", o.Name)
	case !nameRE.MatchString(o.Name) || strings.Trim(o.Name, ".") == "":
		return spiffeid.ID{}, invalidf("--name %q may hold only letters, digits, '.', '-' and '_', and not only dots", o.Name)
	case len(o.Name) > 128:
		return spiffeid.ID{}, invalidf("--name is %d characters long; use at most 128", len(o.Name))
	case o.Days < 0:
		return spiffeid.ID{}, invalidf("--days %d is not positive", o.Days)
	}
	for _, d := range o.DNSNames {
		if !dnsRE.MatchString(d) || len(d) > 253 {
			return spiffeid.ID{}, invalidf("--dns %q is not a host name", d)
		}
	}
	if o.Role.Usage().Server && len(o.IPs) == 0 && len(o.DNSNames) == 0 {
		return spiffeid.ID{}, invalidf("a %s certificate serves TLS: give the addresses it serves on with --ip (or --dns)", o.Role)
	}
	if ca.TrustDomain.IsZero() {
		return spiffeid.ID{}, invalidf("CA %s: %w", ca.CertPath(), errNoTrustDomain)
	}
	id, err := spiffeid.FromSegments(ca.TrustDomain, string(o.Role), o.Name)
	if err != nil {
		return spiffeid.ID{}, invalidf("failed to build the SPIFFE ID for %s/%s: %w", o.Role, o.Name, err)
	}
	return id, nil
}

// Issue makes a key and a certificate for opts, signed by ca. It writes
// nothing.
func (ca *CA) Issue(opts LeafOptions) (*Leaf, error) {
	id, err := opts.validate(ca)
	if err != nil {
		return nil, err
	}
	if opts.Days == 0 {
		opts.Days = DefaultLeafDays
	}
	t := clock(opts.Now)
	notAfter := t.AddDate(0, 0, opts.Days)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, invalidf("a certificate for %d days would outlive the CA %s, which expires %s; issue for fewer days or make a new CA",
			opts.Days, ca.CertPath(), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if t.Before(ca.Cert.NotBefore) {
		return nil, fmt.Errorf("the CA %s is not valid before %s; check the clock", ca.CertPath(), ca.Cert.NotBefore.UTC().Format(time.RFC3339))
	}
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	cn := string(opts.Role) + "/" + opts.Name
	if len(cn) > 64 { // ub-common-name
		cn = ""
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"keyshare"}},
		NotBefore:             t.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		BasicConstraintsValid: true, // CA:FALSE, said explicitly
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           opts.Role.Usage().extKeyUsage(),
		URIs:                  []*url.URL{id.URL()},
		IPAddresses:           opts.IPs,
		DNSNames:              opts.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign the certificate for %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the certificate for %s: %w", id, err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{ID: id, Cert: cert, CertPEM: pemCert(der), KeyPEM: keyPEM}, nil
}

// LeafPaths are where WriteLeaf puts <role>-<name>.crt and .key in dir.
func LeafPaths(dir string, role Role, name string) (certPath, keyPath string) {
	base := filepath.Join(dir, string(role)+"-"+name)
	return base + ".crt", base + ".key"
}

// WriteLeaf writes the key (0600) and then the certificate (0644) to
// LeafPaths, creating dir (0755) if needed. It refuses to start if either file exists, and never leaves a
// certificate without its key.
func WriteLeaf(dir string, role Role, name string, l *Leaf) (certPath, keyPath string, err error) {
	certPath, keyPath = LeafPaths(dir, role, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("failed to create folder %s for the certificate: %w", dir, err)
	}
	if err := refuseExisting(keyPath, certPath); err != nil {
		return "", "", err
	}
	if err := createFile(keyPath, l.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := createFile(certPath, l.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("%w (the key %s was written; remove it before retrying)", err, keyPath)
	}
	return certPath, keyPath, nil
}
