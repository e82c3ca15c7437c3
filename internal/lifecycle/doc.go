// Package lifecycle is the operator's side of keyshare: Init deals a new
// Vault's unseal key to the holders, the break-glass helpers (Collector,
// Submit, UnsealFromHolders) unseal by hand, and Rekey rotates the shares
// with Vault's verified rekey. The majority manifest, the collection of
// verified shares and their submission are internal/unseal's pipeline, the
// same one `unsealer run` uses. Init takes an InitNode (its Vault an
// Initializer) and Rekey a RekeyNode (a Rekeyer): each gets the abilities
// it needs at compile time. Those and Holder are small interfaces that
// *vaultnode.Node and *sharerpc.Client satisfy, so tests drive it with fakes
// or real processes alike.
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
// through the holders. A failure before the commit asks every holder to
// abort the staged generation, and the holders refuse once Vault is
// initialized (a first generation may then be Vault's only key), so the
// holders that staged it keep it and --recover commits it if a threshold
// was staged. Otherwise Vault is initialized with keys that no one holds,
// and as it holds no data yet the way out is to wipe its storage and
// rerun. A kill leaves:
//
//	init-vault      vault initialized, nothing dealt    the keys are gone; vault
//	                                                    holds no data: wipe, rerun
//	init-stage,     G staged on the holders, vault      --recover unseals the
//	init-read-back  sealed and using G                  sealed node with the staged
//	                                                    G and commits it
//	init-commit     G committed                         done (unseal from holders)
//
// `unsealer init --abort` drops a staged G only while Vault is not
// initialized (a wiped Vault); once it is, G may be its only key. A commit
// that fails on some holders leaves G staged there, still releasable;
// `unsealer init --commit G` finishes it.
//
// # Rekey, and what a kill at each step leaves
//
// Generation N is current on every holder; Rekey makes N+1. It refuses to
// start while any holder has a generation staged (ReadHoldings), and says
// to run --recover: a staged generation may be the only copy of the key
// Vault uses.
//
//	step         after it                       what --recover does, and why
//	rekey-init   Vault rekey started, nothing   nothing staged: cancels the
//	             staged; Vault uses N           rekey with its nonce
//	collect      threshold of N, verified       same
//	rekey-update N given, new keys returned,    same: the new keys take effect
//	             Vault waits for verification   only after verification
//	stage        N+1 staged on the holders;     Vault still waits for the
//	             Vault uses N                   verification of the rekey: that
//	                                            proves N; cancels it (nonce) and
//	                                            drops N+1
//	verify       Vault uses N+1; holders hold   no rekey in Vault: tests. A
//	             N current, N+1 staged          sealed node: unseal with N, else
//	                                            with N+1 (one discarded attempt);
//	                                            none sealed: a test rekey with N's
//	                                            shares: Vault rejects them, which
//	                                            proves it moved on: commits N+1
//	commit       some or all holders at N+1     a holder committed, which happens
//	                                            only after verify: commits N+1
//	                                            everywhere
//
// A Vault restart after any step drops its rekey; then the test decides
// (the restarted node is sealed). So at every point either N (current) or
// N+1 (staged) unseals, and the holders keep both until proof ends one:
//
//   - Vault still waits for the verification of the rekey that staged N+1
//     (provesOld; while the holders do not report the nonce a generation
//     was staged under, "waits for verification" is the proof: a rekey
//     reaches it only with a threshold of the shares of the key Vault uses,
//     and keyshare asks the holders for the committed generation's shares
//     only), or a test rekey accepts N's shares: N+1 is dropped;
//   - an unseal succeeds with one generation: the other is dropped or
//     committed to match;
//   - Vault rejects N's shares in a rekey (vaultnode.IsKeyRejected): N+1 is
//     committed, never dropped. Rekey itself does the same if it meets the
//     rejection.
//
// Rekey's own clean-up follows the same rule: before the first verify
// share it cancels the rekey with its nonce and drops N+1 only once the
// cancel succeeded; after one, it drops N+1 only if Vault still shows this
// very rekey in progress, and otherwise keeps both for --recover. With no
// proof at all, RecoverRekey changes nothing (ErrUndecided) and names the
// command that makes one. AbortRekey cancels a rekey in progress with its
// nonce, and drops a staged generation only on the proof above.
//
// # Adopting an existing Vault
//
// An operator who already runs Vault holds its shares on paper, and the
// holders start empty. When every holder answers and holds nothing
// (neither committed nor staged) and the node is initialized and unsealed,
// Rekey adopts: the paper shares are the committed generation, From = 0,
// and it deals To = 1. The paper shares come from the operators
// (FromCollector: --old-shares-file or --old-shares-prompt), never from
// the holders (FromHolders refuses generation 0). No manifest records
// them, so they are checked for format and length, duplicates and Vault's
// own threshold from seal-status, and Vault judges them: a set it rejects
// cancels the rekey before anything is staged. Holders of which some are
// empty and others hold a generation are refused, naming each one's. The
// holders accept Stage, Commit and Abort while they hold no committed
// generation. The kill table is the rekey's, read with N = the paper
// shares and N+1 = 1:
//
//	step         after it                       what --recover does, and why
//	rekey-init,  Vault rekey started, nothing   every holder empty: cancels
//	collect,     staged; Vault uses the paper   the rekey with its nonce;
//	rekey-update shares                         rerun the adoption
//	stage        1 staged on the holders,       Vault still waits for the
//	             nothing committed; Vault uses  verification: cancels the rekey
//	             the paper shares               and drops 1 (recoverAdopt)
//	verify       Vault uses 1; holders hold     a sealed node: unseal with 1,
//	             nothing committed, 1 staged    committed on success, dropped
//	                                            if Vault rejects it (testStaged);
//	                                            none sealed: a test rekey with
//	                                            the paper shares given by
//	                                            --old-shares-file: rejected, so
//	                                            commits 1 (accepted: drops 1);
//	                                            without them ErrUndecided names
//	                                            both ways
//	commit       some or all holders at 1       a holder committed: commits 1
//	                                            everywhere
//
// A Vault restart after stage leaves the node sealed with the paper shares
// in force: --recover tests 1 on it, Vault rejects it, and 1 is dropped;
// the operators unseal with their shares and adopt again.
//
// The holders' Manifest answer reports their staged generation beside the
// current one (ReadHoldings reads it there; it does not carry the rekey
// nonce, so provesOld relies on Vault's verification step), and the staged
// N+1 is read back after the commit. Rekey's old shares come from the holders
// (FromHolders), which release them for a rekey only to an operator
// identity and only while their own check sees the node rekeying with that
// nonce; or they are typed or read from files (FromCollector).
package lifecycle
