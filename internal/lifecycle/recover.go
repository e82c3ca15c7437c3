package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// ErrUndecided is returned by RecoverRekey when it cannot tell which
// generation Vault uses, so it changes nothing.
var ErrUndecided = errors.New("cannot tell which generation vault uses")

// RecoverConfig is what RecoverRekey and AbortRekey need.
type RecoverConfig struct {
	// Node is the node rekeys run through.
	Node    RekeyNode
	Holders []HolderRef
	// Nodes are all the cluster's nodes: a sealed one can be used to test
	// which generation Vault uses.
	Nodes []Node
	// Old supplies a threshold of the committed generation's shares for
	// the rekey probe on an unsealed node (FromHolders needs an operator
	// identity; FromCollector takes typed shares). Nil skips the probe.
	Old OldShares
	Options
}

// RecoverRekey settles an interrupted rekey (or init), changing the holders
// only on proof of which generation Vault uses (see the package
// documentation). It returns what it did; an error says what is left and
// the one command that settles it.
func RecoverRekey(ctx context.Context, c RecoverConfig) (string, error) {
	c.defaults()
	vr := c.Node.Vault
	h := ReadHoldings(ctx, c.Holders)
	lo, hi := h.Range()
	if len(h.Current) == 0 {
		return "", fmt.Errorf("no holder answered (%s): start the holders and rerun 'unsealer rekey --recover'", h.Unreachable())
	}
	if hi == 0 {
		return c.recoverInit(ctx, h)
	}
	// Some holder committed hi: the commit follows Vault's verification,
	// so Vault uses hi. Finish the commit everywhere.
	if lo < hi {
		if err := CommitInit(ctx, c.Holders, hi, c.Options); err != nil {
			return "", fmt.Errorf("%w: vault uses generation %d; rerun 'unsealer rekey --recover' when the holders are up", err, hi)
		}
		return fmt.Sprintf("vault uses generation %d (a holder had committed it, which happens only after vault verified it): committed it on every holder", hi), nil
	}
	if len(h.Errs) > 0 {
		return "", fmt.Errorf("%w: cannot read every holder (%s): start them, check that they reach vault node %s, and rerun 'unsealer rekey --recover'; nothing was changed",
			ErrUndecided, h.Unreachable(), c.Node.Name)
	}
	next := hi + 1
	staged := h.StagedHolders(next)
	rk, rkErr := vr.RekeyStatus(ctx)
	if len(staged) == 0 {
		if rkErr == nil && rk.Started {
			if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
				return "", fmt.Errorf("%w: vault node %s still has rekey %s in progress; nothing is staged on the holders and generation %d stays in force: rerun 'unsealer rekey --abort'", err, c.Node.Name, rk.Nonce, hi)
			}
			return fmt.Sprintf("cancelled the rekey in progress on %s (nonce %s); no holder had a generation staged; generation %d stays in force", c.Node.Name, rk.Nonce, hi), nil
		}
		return fmt.Sprintf("nothing to recover: every holder holds generation %d and none has a generation staged", hi), nil
	}
	if rkErr == nil && rk.Started {
		if provesOld(h, rk, next) {
			return c.dropStaged(ctx, vr, rk, staged, hi)
		}
		// A rekey that has not made new keys says nothing about the staged
		// generation. Cancelling it never changes Vault's key, and frees
		// the node for the test below.
		if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
			return "", fmt.Errorf("%w: vault node %s has rekey %s in progress, which says nothing about generation %d staged on %v: kept it; rerun 'unsealer rekey --recover'", err, c.Node.Name, rk.Nonce, next, staged)
		}
		c.printf("cancelled rekey %s on %s: it had made no new keys, so it is not the one that staged generation %d", rk.Nonce, c.Node.Name, next)
		rkErr = nil
	}
	// Vault has no rekey in progress: the one that staged next either
	// completed (vault uses next) or was lost (vault uses hi). Test.
	for _, n := range c.Nodes {
		st, err := n.Vault.SealStatus(ctx)
		if err == nil && st.Initialized && st.Sealed {
			return c.testOn(ctx, n, h, staged, next)
		}
	}
	if c.Old != nil && rkErr == nil {
		return c.probe(ctx, vr, h.Manifest, len(h.Manifest.Digests), h, staged, next)
	}
	return "", c.undecided(h, staged, next, rkErr)
}

// provesOld reports whether Vault's rekey in progress proves that Vault
// still uses the committed generation, so that the staged one (next) can
// be dropped: it is the rekey next was staged under (the holders report
// its nonce), or, while the holders do not report nonces, it is waiting
// for verification. A rekey reaches verification only with a threshold of
// the shares of the key Vault uses, and keyshare asks the holders for the
// committed generation's shares only (never a staged one); so Vault uses
// the committed generation and has not switched.
func provesOld(h Holdings, rk vaultnode.RekeyStatus, next uint64) bool {
	if len(h.StagedNonce) > 0 {
		return h.StagedUnder(next, rk.Nonce)
	}
	return rk.VerificationNonce != ""
}

// dropStaged drops the staged generation and then cancels the rekey in
// progress with its nonce: provesOld held. The drop comes first because a
// holder allows it only while its own look at Vault still shows the rekey
// the generation was staged under; once cancelled, that proof is gone.
func (c RecoverConfig) dropStaged(ctx context.Context, vr Rekeyer, rk vaultnode.RekeyStatus, staged []string, cur uint64) (string, error) {
	if err := c.abortAll(ctx, c.Holders, cur+1); err != nil {
		return "", fmt.Errorf("%w: vault node %s still uses %s and waits for the verification of rekey %s; rerun 'unsealer rekey --recover' when the holders are up", err, c.Node.Name, genWords(cur), rk.Nonce)
	}
	if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
		return "", fmt.Errorf("%w: staged generation %d was dropped, but vault node %s still has rekey %s in progress (it uses %s): run 'unsealer rekey --abort'", err, cur+1, c.Node.Name, rk.Nonce, genWords(cur))
	}
	return fmt.Sprintf("vault node %s still waited for the verification of rekey %s, so it uses %s: cancelled that rekey and dropped staged generation %d (from %v); %s stays in force", c.Node.Name, rk.Nonce, genWords(cur), cur+1, staged, genWords(cur)), nil
}

// undecided is the error when no test could be made, with the command that
// makes one.
func (c RecoverConfig) undecided(h Holdings, staged []string, next uint64, rkErr error) error {
	why := fmt.Sprintf("holders %v have generation %d staged and vault node %s has no rekey in progress, so that rekey either completed (vault uses %d) or was lost (vault uses %d); no node is sealed to test on",
		staged, next, c.Node.Name, next, next-1)
	if rkErr != nil {
		why = fmt.Sprintf("holders %v have generation %d staged and vault node %s cannot be asked (%v)", staged, next, c.Node.Name, rkErr)
	}
	todo := fmt.Sprintf("rerun with an operator identity and VAULT_TOKEN set: 'unsealer rekey --recover -c <operator config>' (or give %d shares of generation %d with --old-shares-file), which tests generation %d in a rekey that it then cancels",
		h.Manifest.Threshold, next-1, next-1)
	if len(c.Nodes) > 1 {
		todo += "; or restart one standby vault node (it comes back sealed) and rerun 'unsealer rekey --recover', which tests both generations on it"
	}
	return fmt.Errorf("%w: %s: %s; never abort generation %d by hand", ErrUndecided, why, todo, next)
}

// probe tells which generation an unsealed Vault uses without sealing it:
// it starts a rekey (of n shares) and gives it a threshold of the
// committed generation's shares (m; generation 0 for the operators' shares
// of an adopted Vault). Vault accepting them (the rekey makes new keys) proves it uses
// the committed generation: the probe rekey is cancelled and the staged
// generation dropped. Vault rejecting them (it cannot open its root key)
// proves it moved on: the staged generation is committed. The probe's new
// keys are zeroed at once; they never leave this process.
func (c RecoverConfig) probe(ctx context.Context, vr Rekeyer, m shares.Manifest, n int, h Holdings, staged []string, next uint64) (string, error) {
	if m.Generation != next-1 {
		return "", c.undecided(h, staged, next, nil)
	}
	st, err := vr.RekeyInit(ctx, n, m.Threshold)
	if err != nil {
		return "", fmt.Errorf("%w: starting a rekey to test generation %d: %w", ErrUndecided, m.Generation, err)
	}
	c.printf("testing generation %d on %s in rekey %s (it is cancelled afterwards)", m.Generation, c.Node.Name, st.Nonce)
	cancel := func(err error) (string, error) {
		if cerr := vr.RekeyCancel(context.WithoutCancel(ctx), st.Nonce); cerr != nil {
			err = fmt.Errorf("%w (and cancelling test rekey %s failed: %w)", err, st.Nonce, cerr)
		}
		return "", err
	}
	old, err := c.Old(ctx, m, c.Node.Name, st.Nonce)
	if err != nil {
		return cancel(fmt.Errorf("%w: collecting a threshold of generation %d for the test: %w: %s", ErrUndecided, m.Generation, err, c.undecided(h, staged, next, nil)))
	}
	defer shares.ZeroShares(old)
	if err := checkOld(old, m); err != nil {
		return cancel(err)
	}
	outcome, up, err := c.submitOld(ctx, vr, st.Nonce, old)
	zeroKeys(up.Keys)
	switch outcome {
	case oldAccepted:
		if _, err := cancel(nil); err != nil {
			return "", fmt.Errorf("vault node %s accepted generation %d, so it uses it, but %w: rerun 'unsealer rekey --recover'", c.Node.Name, m.Generation, err)
		}
		if err := c.abortAll(ctx, c.Holders, next); err != nil {
			// The holders drop a staged generation only on a proof they
			// see themselves (its rekey in progress, or another
			// generation unsealing a node); a test rekey is not one.
			return "", fmt.Errorf("vault node %s accepted generation %d's shares in a test rekey (cancelled), so it uses generation %d, but the holders keep staged generation %d until they see generation %d unseal a node (%w): restart one vault node (it comes back sealed; the coordinator unseals it with generation %d) and rerun 'unsealer rekey --recover'",
				c.Node.Name, m.Generation, m.Generation, next, m.Generation, err, m.Generation)
		}
		return fmt.Sprintf("vault node %s accepted %s in a test rekey (cancelled), so it uses that key: dropped staged generation %d (from %v)", c.Node.Name, genWords(m.Generation), next, staged), nil
	case oldRejected:
		_, _ = cancel(nil)
		return c.commitStaged(ctx, next, staged, fmt.Sprintf("vault node %s rejected a threshold of %s (%v), so it moved on", c.Node.Name, genWords(m.Generation), err))
	}
	return cancel(fmt.Errorf("%w: testing generation %d on %s: %w; nothing was changed: rerun 'unsealer rekey --recover'", ErrUndecided, m.Generation, c.Node.Name, err))
}

// commitStaged commits generation gen, staged on the holders named, after
// proof that Vault no longer uses the committed one.
func (c RecoverConfig) commitStaged(ctx context.Context, gen uint64, staged []string, proof string) (string, error) {
	if err := CommitInit(ctx, c.Holders, gen, c.Options); err != nil {
		return "", fmt.Errorf("%s: %w: rerun 'unsealer rekey --recover' when the holders are up", proof, err)
	}
	return fmt.Sprintf("%s: committed staged generation %d on every holder (%v had it staged)", proof, gen, staged), nil
}

// testOn unseals the sealed node n with the committed generation or, if
// Vault rejects it, with the staged one, and settles the holders to match.
func (c RecoverConfig) testOn(ctx context.Context, n Node, h Holdings, staged []string, next uint64) (string, error) {
	cur := h.Manifest
	if cur.Generation != 0 {
		ss, err := collectForProof(ctx, h.Agreeing, cur, n.Name)
		if err == nil {
			_, err = c.Submit(ctx, n, ss)
			shares.ZeroShares(ss)
			if err == nil {
				if err := c.abortAll(ctx, c.Holders, next); err != nil {
					return "", fmt.Errorf("%w: vault uses generation %d; rerun 'unsealer rekey --recover' when the holders are up", err, cur.Generation)
				}
				return fmt.Sprintf("vault uses generation %d (it unsealed %s): dropped staged generation %d", cur.Generation, n.Name, next), nil
			}
		}
		if !errors.Is(err, ErrRejected) {
			return "", fmt.Errorf("%w: testing generation %d on %s: %w: rerun 'unsealer rekey --recover'", ErrUndecided, cur.Generation, n.Name, err)
		}
		c.printf("%s rejected generation %d; trying staged generation %d", n.Name, cur.Generation, next)
	}
	if err := c.unsealStaged(ctx, n, next); err != nil {
		return "", err
	}
	return c.commitStaged(ctx, next, staged, fmt.Sprintf("vault uses generation %d (it unsealed %s)", next, n.Name))
}

// unsealStaged unseals the sealed node n with generation gen, staged on
// the holders, through the pipeline: the staged manifest a majority of
// holders report (their Manifest answers carry it), and shares verified
// against it.
func (c RecoverConfig) unsealStaged(ctx context.Context, n Node, gen uint64) error {
	set, err := unseal.Collect(ctx, refs(c.Holders), len(c.Holders), n.Name, unseal.Options{Which: unseal.Staged})
	defer set.Zero()
	switch {
	case err != nil:
		return fmt.Errorf("%w: staged generation %d for %s: %w: start the holders and rerun 'unsealer rekey --recover'", ErrUndecided, gen, n.Name, err)
	case set.Manifest.Generation != gen:
		return fmt.Errorf("%w: a majority of holders has generation %d staged, not %d: check them with 'unsealer rekey --status'", ErrUndecided, set.Manifest.Generation, gen)
	}
	if _, err := c.Submit(ctx, n, set.Threshold()); err != nil {
		return fmt.Errorf("%w: neither the committed generation nor staged generation %d unseals %s: %w", ErrUndecided, gen, n.Name, err)
	}
	return nil
}

// recoverInit settles what an interrupted init left: no committed
// generation anywhere, and perhaps one staged.
func (c RecoverConfig) recoverInit(ctx context.Context, h Holdings) (string, error) {
	st, err := c.Node.Vault.SealStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("vault node %s: %w: start it and rerun 'unsealer rekey --recover'", c.Node.Name, err)
	}
	gens := h.StagedGens()
	switch {
	case !st.Initialized && len(gens) == 0:
		return fmt.Sprintf("nothing to recover: vault node %s is not initialized and no holder holds a generation: run 'unsealer init'", c.Node.Name), nil
	case !st.Initialized:
		if err := c.abortAll(ctx, c.Holders, gens[len(gens)-1]); err != nil {
			return "", err
		}
		return fmt.Sprintf("vault node %s is not initialized, so staged generation %d opens nothing: dropped it; run 'unsealer init'", c.Node.Name, gens[len(gens)-1]), nil
	case len(gens) == 0 && len(h.Errs) == 0 && !st.Sealed:
		// An adoption killed before it staged leaves Vault's rekey in
		// progress: cancelling it never changes Vault's key.
		if rk, err := c.Node.Vault.RekeyStatus(ctx); err == nil && rk.Started {
			if err := c.Node.Vault.RekeyCancel(ctx, rk.Nonce); err != nil {
				return "", fmt.Errorf("%w: every holder is empty and vault node %s has rekey %s in progress; vault still uses the operators' shares: rerun 'unsealer rekey --recover'", err, c.Node.Name, rk.Nonce)
			}
			return fmt.Sprintf("cancelled rekey %s on %s; every holder is empty, so vault still uses the operators' shares: rerun the adoption ('unsealer rekey --old-shares-file F...')", rk.Nonce, c.Node.Name), nil
		}
		fallthrough
	case len(gens) == 0 && len(h.Errs) == 0:
		return "", fmt.Errorf("vault node %s is initialized and every holder is empty (nothing committed or staged). If an 'unsealer init' was interrupted before the keys were dealt, they are gone and vault holds no data: stop it, wipe its storage, and rerun init. If it is an existing vault whose shares the operators hold, adopt it with a threshold of them: 'unsealer rekey -c <operator config> --old-shares-file F...'", c.Node.Name)
	case len(gens) == 0:
		return "", fmt.Errorf("no holder that answered holds a generation (%s): start the holders and rerun 'unsealer rekey --recover'", h.Generations())
	case len(gens) > 1:
		return "", fmt.Errorf("%w: the holders have different generations staged (%s): check them with 'unsealer rekey --status'", ErrUndecided, h.Generations())
	case !st.Sealed:
		// Only an adoption leaves the node unsealed with nothing
		// committed (init unseals after its commit).
		return c.recoverAdopt(ctx, h, gens[0])
	}
	return c.testStaged(ctx, c.Node.Node(), h, gens[0])
}
