// Package unseal is the one unseal pipeline of keyshare: the rule that
// picks the manifest a majority of holders agree on (Tally), the
// collection of verified shares from the holders (Collect, Release), and
// the submission of exactly a threshold of one generation to a Vault node
// (Submit). The coordinator (`unsealer run`), the lifecycle commands (init,
// unseal, rekey) and `unsealer status` all use it, so a change to any of
// these rules lands here once.
//
// How a collection runs (Collect):
//
//	manifest   every configured holder is asked at once, each call with its
//	           own deadline (Options.Timeout); gossip may add an extra
//	           address for a holder (a second HolderRef with the same ID),
//	           never replace or suppress one
//	agree      the first manifest more than half of all holders hold wins;
//	           each holder ID counts once, whatever its addresses
//	release    every holder whose manifest matches is asked for its shares
//	           as soon as its match is known, in parallel, each call with
//	           its own deadline; a holder that stalls costs nobody else
//	           anything
//	verify     each share must match the manifest; duplicates and bad ones
//	           are zeroed and dropped
//	done       as soon as a threshold of verified shares is in hand
//	           (Options.Every waits for every matching holder instead); the
//	           calls still running are cancelled and their answers zeroed
//
// Collected share bytes live in buffers locked in RAM where the OS allows
// (shares.LockedBytes); Result.Zero wipes them.
package unseal
