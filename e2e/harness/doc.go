// Package harness starts the real programs that keyshare's end-to-end tests
// and the local demo run against, as child processes on loopback.
//
// The pieces fit together like this:
//
//   - VaultBinary finds or builds the pinned Vault server (v1.21.0) through
//     e2e/tools/vault/build.sh, or takes $KEYSHARE_VAULT_BIN.
//   - Process runs one daemon with its output appended to a log file, and
//     stops (SIGTERM, then SIGKILL after a bound), kills (SIGKILL) and
//     restarts it by PID. Children die with the harness on Linux.
//   - VaultCluster lays out a raft cluster, three nodes by default: one
//     127.0.0.x address, API and cluster port, data folder, server
//     certificate from a devpki CA, and HCL config with retry_join per node.
//     NewTestVaultCluster adds t.Cleanup that kills every node and, when the
//     test failed, logs the tail of each node's log.
//   - VaultNode and VaultCluster methods talk to Vault through
//     github.com/hashicorp/vault/api over TLS with only the CA trusted:
//     WaitAPI, SealStatus, Health, Init, Unseal, UnsealAll, WaitActive and
//     WaitRaftHealthy. Every wait polls with the caller's deadline.
//   - Poll, PollEvery and PollProcess are the one way the e2e suite (this
//     package, kubeharness, topology and the tests) waits: ask at once,
//     then every interval, until done or the context's deadline; Stop ends
//     a hopeless wait at once, and PollProcess ends when the process exits,
//     quoting its log. Never a bare sleep.
//
// Unseal keys and the root token are returned to the caller and never
// printed: InitResult redacts them from fmt and slog.
//
// A typical test:
//
//	c := harness.NewTestVaultCluster(t, harness.VaultClusterOptions{
//		Binary: harness.RequireVaultBinary(t),
//	})
//	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
//	defer cancel()
//	if err := c.Start(ctx); err != nil { t.Fatal(err) }
//	res, err := c.Init(ctx, 5, 3)
//	...
//	err = c.UnsealAll(ctx, res.KeysB64[:3])
//	leader, err := c.WaitActive(ctx)
//
// A joining node with a Shamir seal (Vault 1.21): retry_join keeps asking
// the other nodes for a join challenge every 2 s. Until an active leader
// answers, the node reports initialized: false and refuses unseal keys.
// Once it holds a challenge it reports initialized: true; the last unseal
// key then blocks until the node has answered the challenge and joined, and
// the node unseals a moment later, once the keyring has arrived through
// raft. Unseal handles all of this. After a restart, a node that has joined
// before unseals like a single node.
package harness
