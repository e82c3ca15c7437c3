package identity

import (
	"crypto/tls"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FromConnectionState returns the peer's ID and role from a completed
// handshake made with a config from Source.ServerConfig or
// Source.ClientConfig. Those configs refuse the handshake unless the peer's
// chain, CRL status, ID and authorization were verified, so a completed
// handshake with a peer certificate is a verified one.
//
// The package speaks no gRPC: sharerpc reads a gRPC peer's TLS state and
// calls this, so that the policy engine can use the identity model without
// importing a transport.
func FromConnectionState(cs tls.ConnectionState) (spiffeid.ID, Role, error) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, "", ErrNoPeerIdentity
	}
	return IDFromLeaf(cs.PeerCertificates[0])
}
