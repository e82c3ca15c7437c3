// Package pki is the operator's certificate authority for one keyshare
// deployment: what `unsealer tls ca create`, `unsealer tls cert create`,
// `unsealer tls cert revoke` and `unsealer tls crl update` do.
//
// A deployment has one CA (CreateCA) in a folder of three files:
//
//	ca.crt   the CA certificate, the ca_file of every daemon (0644)
//	ca.key   its private key, PKCS#8 PEM (0600; keep it offline)
//	crl.pem  the CRL the daemons load from tls.crl_file (0644)
//
// The CA is ECDSA P-256 or Ed25519, carries its trust domain as a URI SAN
// (spiffe://<trust-domain>, as SPIFFE signing certificates may) and, unless
// turned off, a critical name constraint that permits only URIs in that trust
// domain: a leaf it signs for another trust domain does not verify anywhere.
//
// Leaves (Issue) carry exactly one URI SAN, spiffe://<trust-domain>/<role>/<name>,
// plus the IP and DNS SANs given, with the key usages of the role (Usage):
// holders and unsealers serve gossip and so are TLS servers and clients,
// operators and the KMS plugin are clients only, and a Vault listener's
// certificate is a server only. The identity code (pkg/transport/identity)
// accepts holder, unsealer and operator leaves; kmsplugin and vault leaves
// have roles it refuses, so they can never reach a share.
//
// Revoke adds a certificate's serial to the CRL: it reads the current CRL
// back (it is its own database), checks it was signed by this CA, and writes
// a new one with the CRL number incremented, atomically, so a daemon
// watching the file never reads half of it.
//
// Files are never overwritten: private keys and certificates are written to
// a temporary file, synced, and linked into place with link(2), which fails
// if the name exists. Only the CRL is replaced (by rename), because
// replacing it is its purpose.
package pki
