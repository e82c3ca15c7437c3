// Package lifecycle is the operator's side of keyshare: Init deals a new
// Vault's unseal key to the holders, the break-glass helpers (Collector,
// Submit, UnsealFromHolders) unseal by hand, and Rekey rotates the shares
// with Vault's verified rekey. It depends on small interfaces (Sealer,
// Initializer, Rekeyer, Holder) that *vaultnode.Node and *sharerpc.Client
// satisfy, so tests drive it with fakes or real processes alike.
//
// Shares live only in memory: they are never written, printed or logged,
// and are zeroed after use. Every set submitted to Vault is a threshold of
// one generation, checked against that generation's manifest.
//
// # Init
//
// Before Vault is touched, every holder must answer and accept a stage
// call (probed with an Abort of the new generation, which changes nothing).
// Then: sys/init; stage generation G (1, or the newest held + 1) on every
// holder with the full manifest; read it back through Release (the node is
// initialized and sealed, so policy allows it) and compare byte for byte;
// commit everywhere; read every holder's manifest back; unseal the node
// through the holders. A failure before the commit aborts the staged
// generation everywhere: Vault is then initialized with keys that no one
// holds, and as it holds no data yet the way out is to wipe its storage and
// rerun. A kill before the commit leaves G staged (`unsealer init --abort`
// drops it; a rerun after the wipe replaces it). A commit that fails on some
// holders leaves G staged there, still releasable; `unsealer init --commit G`
// finishes it.
//
// # Rekey, and what a kill at each step leaves
//
// Generation N is current on every holder; Rekey makes N+1.
//
//	rekey-init   Vault rekey started            Vault still uses N; its rekey
//	                                            is in memory and a restart drops it
//	collect      threshold of N, verified       same
//	rekey-update N given, new keys returned     same: the new keys take effect only
//	                                            after verification
//	stage        N+1 staged on the holders      Vault uses N; holders hold N
//	                                            current, N+1 staged
//	verify       N+1 given back to Vault        Vault uses N+1 once the last
//	                                            verify share lands; holders can
//	                                            release the staged N+1
//	commit       N+1 current on the holders     done: N+1 unseals
//
// So at every point either N (current) or N+1 (staged) unseals, and the
// holders keep both until the commit. Staging happens only after Vault
// accepted N's shares in rekey-update, which proves Vault still uses N, so
// a rekey can never overwrite a staged generation Vault depends on.
//
// RecoverRekey settles an interrupted rekey: if some holder committed N+1,
// Vault verified it, so it commits everywhere. If Vault shows the rekey
// still in progress, verification did not complete: it cancels and aborts
// N+1. If Vault shows none (it finished, or a restart dropped it) it tests
// on a sealed node: N first, and if Vault rejects that (one discarded
// attempt), the staged N+1; whichever unseals is committed or kept. With no
// sealed node it changes nothing and says to restart a standby. AbortRekey
// aborts only while Vault shows the rekey in progress.
//
// The holders' manifest call serves the current generation only, so the
// staged N+1 is read back after the commit. Rekey's old shares come from
// the holders (FromHolders), which release them for a rekey only to an
// operator identity and only while their own check sees the node rekeying
// with that nonce; or they are typed or read from files (FromCollector).
package lifecycle
