// Package identity gives keyshare daemons their mutual-TLS identity and
// tells them who is on the other end of a connection.
//
// Every certificate in a deployment comes from one private CA and carries
// exactly one URI SAN, spiffe://<trust-domain>/<role>/<name>, with role one
// of holder, unsealer or operator. The ID is parsed with go-spiffe
// (x509svid), which refuses leaves with several URI SANs; leaves with CA
// bits or certificate-signing key usage are refused too.
//
// The pieces:
//
//   - A Source loads the CA bundle, the certificate and key, and an optional
//     CRL from PEM files (Options). It reloads them when the files change
//     (Watch) or when asked (Reload, wired to SIGHUP by the daemons). A
//     reload that fails keeps the previous material and logs why. A
//     configured CRL that cannot be read, parsed or verified fails closed:
//     every handshake is refused until it is fixed.
//   - Source.ServerConfig and Source.ClientConfig return *tls.Config values
//     for TLS 1.3 only, with client certificates required. Both sides verify
//     the peer in VerifyConnection against the current bundle and CRL, then
//     ask an Authorizer (exact IDs or roles), so a bad peer fails the
//     handshake and never reaches a handler. New material applies to new
//     handshakes without a restart.
//   - FromConnectionState returns the verified peer ID and role of an
//     established connection (sharerpc reads it from a gRPC peer: this
//     package imports no gRPC, so that pkg/policy can use its model).
//   - Parse, ParseAs and ParseIn are the one identity model: every
//     package that needs the role or the trust domain of an ID (policy,
//     gossip, the configs) parses it here, never by looking for "/holder/"
//     in a string.
package identity
