package gossip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// alpnProtocol is negotiated on every gossip connection, so a gossip client
// can never be confused with a share-service client that uses the same
// certificates, and the other way round.
const alpnProtocol = "keyshare-gossip/1"

// peerPolicy decides which certificate identities may take part in gossip.
type peerPolicy struct {
	trustDomain spiffeid.TrustDomain
	roles       []identity.Role
}

// parseMemberID parses a member's name, its SPIFFE ID, with the one
// identity model, and returns it with its role.
func parseMemberID(s string) (spiffeid.ID, identity.Role, error) {
	id, err := identity.Parse(s)
	if err != nil {
		return spiffeid.ID{}, "", err
	}
	return id.SPIFFE, id.Role, nil
}

// check returns an error unless id belongs to the trust domain and carries
// one of the allowed roles.
func (p peerPolicy) check(id spiffeid.ID) error {
	if !id.MemberOf(p.trustDomain) {
		return fmt.Errorf("%s is not in trust domain %s", id, p.trustDomain)
	}
	role, _, err := identity.ParseID(id)
	if err != nil {
		return err
	}
	if !slices.Contains(p.roles, role) {
		return fmt.Errorf("%s has role %q; gossip admits only %v", id, role, p.roles)
	}
	return nil
}

// verifyState checks a completed handshake and returns the peer's ID. The
// chain itself was verified by crypto/tls against the caller's CA pool.
func (p peerPolicy) verifyState(cs tls.ConnectionState) (spiffeid.ID, error) {
	if cs.Version != tls.VersionTLS13 {
		return spiffeid.ID{}, errors.New("connection is not TLS 1.3")
	}
	if cs.NegotiatedProtocol != alpnProtocol {
		return spiffeid.ID{}, fmt.Errorf("peer did not negotiate ALPN %q", alpnProtocol)
	}
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("peer presented no certificate")
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("peer certificate carries no usable SPIFFE ID: %w", err)
	}
	if err := p.check(id); err != nil {
		return spiffeid.ID{}, err
	}
	return id, nil
}

// peerAddr is the net.Addr handed to memberlist with each incoming packet. It
// carries the verified ID of the connection the packet arrived on.
type peerAddr struct {
	net.Addr
	id string
}

// PeerID returns the SPIFFE ID verified on the packet's connection.
func (a peerAddr) PeerID() string { return a.id }
