package sharerpc

import (
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// peerIdentity returns the ID and role of a gRPC peer whose connection uses
// TLS credentials built from identity's configs. It lives here, at the gRPC
// boundary, so that the identity model imports no gRPC.
func peerIdentity(p *peer.Peer) (spiffeid.ID, identity.Role, error) {
	if p == nil {
		return spiffeid.ID{}, "", identity.ErrNoPeerIdentity
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffeid.ID{}, "", identity.ErrNoPeerIdentity
	}
	return identity.FromConnectionState(info.State)
}
