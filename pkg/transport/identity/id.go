package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Role is the first path segment of a keyshare SPIFFE ID. It is the one
// model of roles in keyshare: the policy engine, gossip, the configs and the
// share service all ask this package what role an ID has.
type Role string

// The roles a keyshare certificate can carry.
const (
	// RoleHolder keeps shares and hands them out.
	RoleHolder Role = "holder"
	// RoleUnsealer is the coordinator that collects shares.
	RoleUnsealer Role = "unsealer"
	// RoleOperator is a person using the break-glass CLI.
	RoleOperator Role = "operator"
)

// Roles lists every known role.
var Roles = []Role{RoleHolder, RoleUnsealer, RoleOperator}

// GossipRoles are the roles that take part in gossip: holders and
// coordinators. Operators only call the share service.
var GossipRoles = []Role{RoleHolder, RoleUnsealer}

// Valid reports whether r is one of the known roles. Roles are case
// sensitive: "Holder" is not a role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// ParseRole returns the role s names, or an error listing the known ones.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q; use holder, unsealer or operator", s)
	}
	return r, nil
}

// ErrNoPeerIdentity is returned by FromConnectionState when the connection
// carries no verified peer certificate.
var ErrNoPeerIdentity = errors.New("connection has no verified peer certificate")

// ID is a parsed keyshare identity, spiffe://<trust-domain>/<role>/<name>.
// The zero ID is no identity.
type ID struct {
	// SPIFFE is the full ID.
	SPIFFE spiffeid.ID
	// Role is its first path segment, a known role.
	Role Role
	// Name is its second and last path segment.
	Name string
}

// String is the ID in its canonical form.
func (i ID) String() string { return i.SPIFFE.String() }

// TrustDomain is the ID's trust domain.
func (i ID) TrustDomain() spiffeid.TrustDomain { return i.SPIFFE.TrustDomain() }

// IsZero reports whether i is the zero ID.
func (i ID) IsZero() bool { return i.SPIFFE.IsZero() }

// Parse parses a keyshare identity. The ID must be a valid SPIFFE ID (go-spiffe
// refuses upper-case trust domains, empty, "." and ".." segments, query,
// fragment, port, user info and percent-encoding), its path must have
// exactly two segments, and the first must be a known role. So
// spiffe://td/unsealer/holder/x is no holder (it is no keyshare ID at all).
func Parse(s string) (ID, error) {
	sid, err := spiffeid.FromString(s)
	if err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	role, name, err := ParseID(sid)
	if err != nil {
		return ID{}, err
	}
	return ID{SPIFFE: sid, Role: role, Name: name}, nil
}

// ParseAs parses s like Parse and also requires one of the roles. The error
// names the roles wanted, for config messages.
func ParseAs(s string, roles ...Role) (ID, error) {
	id, err := Parse(s)
	if err != nil {
		return ID{}, err
	}
	if !slices.Contains(roles, id.Role) {
		return ID{}, fmt.Errorf("SPIFFE ID %q has role %s; want %s", s, id.Role, joinRoles(roles))
	}
	return id, nil
}

// ParseIn parses s like ParseAs and also requires the trust domain td.
func ParseIn(s string, td spiffeid.TrustDomain, roles ...Role) (ID, error) {
	id, err := ParseAs(s, roles...)
	if err != nil {
		return ID{}, err
	}
	if !id.SPIFFE.MemberOf(td) {
		return ID{}, fmt.Errorf("SPIFFE ID %q is not in trust domain %q", s, td.Name())
	}
	return id, nil
}

// HasRole reports whether s parses as a keyshare ID of the role r.
func HasRole(s string, r Role) bool {
	id, err := Parse(s)
	return err == nil && id.Role == r
}

// ParseTrustDomain parses a trust domain name (lower case, no scheme).
func ParseTrustDomain(s string) (spiffeid.TrustDomain, error) {
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", s, err)
	}
	if td.Name() != s {
		// TrustDomainFromString also accepts "spiffe://td"; a config
		// names the bare domain.
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: want the bare name, like %q", s, td.Name())
	}
	return td, nil
}

func joinRoles(roles []Role) string {
	parts := make([]string, len(roles))
	for i, r := range roles {
		parts[i] = string(r)
	}
	return strings.Join(parts, " or ")
}

// ParseID checks that id has the path /<role>/<name> with a known role and a
// non-empty name, and returns the role and the name.
func ParseID(id spiffeid.ID) (Role, string, error) {
	if id.IsZero() {
		return "", "", errors.New("empty SPIFFE ID")
	}
	segs := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(segs) != 2 || segs[0] == "" || segs[1] == "" {
		return "", "", fmt.Errorf("SPIFFE ID %q must have the form spiffe://<trust-domain>/<role>/<name>", id)
	}
	role, err := ParseRole(segs[0])
	if err != nil {
		return "", "", fmt.Errorf("SPIFFE ID %q: %w", id, err)
	}
	return role, segs[1], nil
}

// IDFromLeaf returns the SPIFFE ID and role of a leaf certificate. It refuses
// certificates with no or several URI SANs (x509svid.IDFromCert), CA
// certificates and certificates allowed to sign certificates or CRLs, and IDs
// that do not follow spiffe://<trust-domain>/<role>/<name>. It does not
// verify the chain.
func IDFromLeaf(leaf *x509.Certificate) (spiffeid.ID, Role, error) {
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("certificate %q has no usable SPIFFE ID: %w", leaf.Subject.CommonName, err)
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return spiffeid.ID{}, "", fmt.Errorf("certificate for %s is a CA certificate and cannot be used as a leaf; issue a leaf certificate", id)
	}
	role, _, err := ParseID(id)
	if err != nil {
		return spiffeid.ID{}, "", err
	}
	return id, role, nil
}
