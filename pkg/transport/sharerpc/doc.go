// Package sharerpc is the share service between keyshare holders and
// coordinators, over gRPC with mutual TLS.
//
// A holder builds a Server with NewServer, giving it the server *tls.Config
// of its identity (identity.Source.ServerConfig) and a Handler. The TLS
// layer refuses any peer whose certificate does not verify or is not
// authorized, so a Handler is reached only by verified peers; it gets the
// peer's SPIFFE ID, role and source address in a Peer, and plain Go types
// rather than protobuf messages. Inputs are checked before the Handler sees
// them.
//
// A Handler reports a refusal as a *policy.Denial. The Server maps it to a
// gRPC status code here, at the boundary (see Code), and carries the reason
// so that the Client turns it back into a *policy.Denial: callers use
// policy.AsDenial on the error of any Client method. Every other Handler
// error becomes Internal with a generic message, and is logged on the
// holder.
//
// A coordinator uses Dial with its client *tls.Config
// (identity.Source.ClientConfig) and the exact ID of the holder it expects.
package sharerpc
