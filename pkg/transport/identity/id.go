package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is the first path segment of a keyshare SPIFFE ID.
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

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleHolder, RoleUnsealer, RoleOperator:
		return true
	}
	return false
}

// ErrNoPeerIdentity is returned by FromConnectionState and FromPeer when the
// connection carries no verified peer certificate.
var ErrNoPeerIdentity = errors.New("connection has no verified peer certificate")

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
	role := Role(segs[0])
	if !role.Valid() {
		return "", "", fmt.Errorf("SPIFFE ID %q has unknown role %q; use holder, unsealer or operator", id, segs[0])
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

// FromConnectionState returns the peer's ID and role from a completed
// handshake made with a config from Source.ServerConfig or
// Source.ClientConfig. Those configs refuse the handshake unless the peer's
// chain, CRL status, ID and authorization were verified, so a completed
// handshake with a peer certificate is a verified one.
func FromConnectionState(cs tls.ConnectionState) (spiffeid.ID, Role, error) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, "", ErrNoPeerIdentity
	}
	return IDFromLeaf(cs.PeerCertificates[0])
}

// FromPeer returns the ID and role of a gRPC peer whose connection uses
// TLS credentials built from this package's configs.
func FromPeer(p *peer.Peer) (spiffeid.ID, Role, error) {
	if p == nil {
		return spiffeid.ID{}, "", ErrNoPeerIdentity
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffeid.ID{}, "", ErrNoPeerIdentity
	}
	return FromConnectionState(info.State)
}

// FromContext returns the ID and role of the gRPC peer of a call's context.
func FromContext(ctx context.Context) (spiffeid.ID, Role, error) {
	p, _ := peer.FromContext(ctx)
	return FromPeer(p)
}
