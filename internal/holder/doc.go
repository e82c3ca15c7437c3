// Package holder is the wiring of the holder daemon (cmd/holder): it opens
// the sealed store, serves the share service over mutual TLS under the
// release policy, joins gossip, writes the audit log and serves metrics. It
// also implements the holder's offline commands (import, confirm-generation).
package holder
