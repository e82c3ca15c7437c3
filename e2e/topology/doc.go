// Package topology lays out and runs keyshare's whole local deployment as
// real processes on loopback, for the end-to-end scenarios (e2e) and the
// one-command demo (e2e/demo).
//
// Every simulated host has an address of its own, so the holders' address
// binding is exercised for real:
//
//	127.0.0.101-103  Vault nodes vault-1..3 (raft, TLS; see e2e/harness)
//	127.0.0.11-13    holders a, b, c (share service, gossip, metrics)
//	127.0.0.20       the coordinator (`unsealer run`) and the operator CLI
//	                 commands that act as it (init, status, rekey)
//	127.0.0.30       the break-glass operator (`unsealer unseal`)
//
// The pieces fit together like this:
//
//   - BuildBinaries builds cmd/holder and cmd/unsealer once into a folder.
//   - New lays out the deployment CA (separate from Vault's, which the
//     harness makes), the folders and the Vault cluster. Start starts Vault,
//     writes every certificate and config, runs `holder keygen` and starts
//     the three holders. Init runs `unsealer init`; StartCoordinator starts
//     `unsealer run`.
//   - Every process's output goes to a file in LogDir, and so does the
//     transcript of every CLI command run through Run, so that a test can
//     search all of it for leaked shares (LeakCheck). Output the caller
//     marks secret (the `holder export` paper backup) is never written.
//   - Close kills every process it started, by PID.
//
// Nothing here prints a share or the root token; the root token is
// redacted from saved transcripts and handed to the caller only.
package topology
