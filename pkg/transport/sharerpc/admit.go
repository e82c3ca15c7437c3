package sharerpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Holders never call the share service: shares go to coordinators and
// operators only. A holder's certificate is nonetheless issued by the same
// CA, so a TLS config that admits the whole trust domain would let one
// leaked holder credential reach every handler (and be denied, and audited,
// in a loop). refuseHolders closes that at the boundary: a holder peer gets
// PermissionDenied on every method, the health service included, before any
// handler runs, and nothing is written for it.

// errHolderPeer is what a holder peer is told: PermissionDenied with the
// typed reason peer_not_allowed, as the policy would say.
var errHolderPeer = denialStatus(policy.Deny(policy.ReasonPeerNotAllowed, "holder identities are not admitted to the share service"))

func isHolderPeer(ctx context.Context) bool {
	gp, ok := peer.FromContext(ctx)
	if !ok {
		return false // peerOf answers Unauthenticated
	}
	_, role, err := peerIdentity(gp)
	return err == nil && role == identity.RoleHolder
}

func refuseHoldersUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if isHolderPeer(ctx) {
		return nil, errHolderPeer
	}
	return next(ctx, req)
}

func refuseHoldersStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if isHolderPeer(ss.Context()) {
		return errHolderPeer
	}
	return next(srv, ss)
}
