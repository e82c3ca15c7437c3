// Package gossip runs the keyshare membership cluster: holders and unsealers
// learn who is alive through github.com/hashicorp/memberlist, and every byte
// of that gossip travels over mutual TLS 1.3.
//
// The pieces fit together like this:
//
//   - Transport is a memberlist.NodeAwareTransport. A single TLS listener
//     accepts both kinds of traffic; the first byte after the handshake says
//     whether the connection carries a stream (push/pull, TCP pings) or a
//     sequence of length-prefixed packets (pings, acks, gossip). Outgoing
//     packets go through one cached TLS connection per peer, fed by a bounded
//     queue, so a slow or partitioned peer never stalls memberlist.
//   - Every connection is authenticated by its certificate. The peer's SPIFFE
//     ID (spiffe://<trust-domain>/<role>/<name>) must be in the local trust
//     domain and carry an allowed role. When memberlist names the node it
//     wants to reach, the certificate presented at that address must carry
//     exactly that name; a ping whose sender name differs from the
//     certificate of the connection it arrived on is dropped.
//   - The transport remembers, per address, the ID it saw when it dialed
//     that address (addressBook). The Alive and Merge delegates use it to
//     refuse any node whose name differs from the certificate served at its
//     advertised address, so an impostor is never admitted, whatever a third
//     party gossips about it.
//   - Cluster wraps memberlist for the daemons: the member list with decoded
//     Meta, an Events channel (join, leave, failed, update), UpdateMeta,
//     Leave and Shutdown. It re-joins the seeds every RejoinInterval, so a
//     node that was partitioned for longer than GossipToTheDeadTime comes
//     back once the network heals (hashicorp/memberlist#222).
//
// Membership is a liveness hint, never an authorization: shares are
// authorized per request, on the verified certificate, by the share service.
package gossip
