package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
)

// ErrUndecided is returned by RecoverRekey when it cannot tell which
// generation Vault uses, so it changes nothing.
var ErrUndecided = errors.New("cannot tell which generation vault uses")

// RecoverConfig is what RecoverRekey and AbortRekey need.
type RecoverConfig struct {
	// Node is the node rekeys run through; its Vault must be a Rekeyer.
	Node    Node
	Holders []HolderRef
	// Nodes are all the cluster's nodes: a sealed one can be used to test
	// which generation Vault uses.
	Nodes []Node
	Options
}

// RecoverRekey finishes or rolls back an interrupted rekey, changing the
// holders only when it knows which generation Vault uses (see the package
// documentation). It returns what it did.
func RecoverRekey(ctx context.Context, c RecoverConfig) (string, error) {
	c.defaults()
	a := Agree(ctx, c.Holders)
	lo, hi := ^uint64(0), uint64(0)
	for _, g := range a.Current {
		lo, hi = min(lo, g), max(hi, g)
	}
	if hi == 0 {
		return "", fmt.Errorf("no holder answered with a generation (%s): start the holders and rerun", a.Unreachable())
	}
	// Some holder committed: the commit follows Vault's verification, so
	// Vault uses hi. Finish the commit everywhere.
	if lo < hi {
		if err := CommitInit(ctx, c.Holders, hi, c.Options); err != nil {
			return "", fmt.Errorf("%w: vault uses generation %d; rerun 'unsealer rekey --recover' when the holders are up", err, hi)
		}
		return fmt.Sprintf("vault uses generation %d: committed it on every holder", hi), nil
	}
	next := hi + 1
	staged, err := c.staged(ctx, next)
	if err != nil {
		return "", err
	}
	vr, ok := c.Node.Vault.(Rekeyer)
	if !ok {
		return "", fmt.Errorf("vault node %s cannot be rekeyed through this client", c.Node.Name)
	}
	rk, rkErr := vr.RekeyStatus(ctx)
	if len(staged) == 0 {
		if rkErr == nil && rk.Started {
			if err := vr.RekeyCancel(ctx); err != nil {
				return "", err
			}
			return fmt.Sprintf("cancelled the rekey in progress on %s; generation %d stays in force", c.Node.Name, hi), nil
		}
		return fmt.Sprintf("nothing to recover: every holder holds generation %d and none has %d staged", hi, next), nil
	}
	// A rekey still in progress means its verification did not complete:
	// Vault uses the old generation.
	if rkErr == nil && rk.Started {
		if err := vr.RekeyCancel(ctx); err != nil {
			return "", err
		}
		if err := c.abortAll(ctx, c.Holders, next); err != nil {
			return "", err
		}
		return fmt.Sprintf("the rekey had not been verified: cancelled it and dropped staged generation %d; generation %d stays in force", next, hi), nil
	}
	// No rekey in Vault: it finished, or was lost in a restart. A sealed
	// node tells: try the current generation, then the staged one.
	for _, n := range c.Nodes {
		st, err := n.Vault.SealStatus(ctx)
		if err != nil || !st.Initialized || !st.Sealed {
			continue
		}
		return c.testOn(ctx, n, a, staged, next)
	}
	return "", fmt.Errorf("%w: holders %v have generation %d staged and vault %s has no rekey in progress, so the rekey either completed or was lost in a restart; "+
		"restart one standby Vault node (it comes back sealed) and rerun 'unsealer rekey --recover', which tests both generations on it; do not abort", ErrUndecided, staged, next, c.Node.Name)
}

// testOn unseals the sealed node n with the current generation or, if
// Vault rejects it, with the staged one, and settles the holders to match.
func (c RecoverConfig) testOn(ctx context.Context, n Node, a Agreement, staged []string, next uint64) (string, error) {
	cur := a.Manifest
	if cur.Generation != 0 {
		ss, err := Collect(ctx, a.Agreeing, cur, n.Name)
		if err == nil {
			_, err = c.Submit(ctx, n, ss)
			shares.ZeroShares(ss)
			if err == nil {
				if err := c.abortAll(ctx, c.Holders, next); err != nil {
					return "", err
				}
				return fmt.Sprintf("vault uses generation %d (it unsealed %s): dropped staged generation %d", cur.Generation, n.Name, next), nil
			}
		}
		if !errors.Is(err, ErrRejected) {
			return "", fmt.Errorf("testing generation %d on %s: %w", cur.Generation, n.Name, err)
		}
		c.printf("%s rejected generation %d; trying staged generation %d", n.Name, cur.Generation, next)
	}
	// The staged manifest is not served, so the staged shares are checked
	// for consistency when enough are in hand, and by Vault itself.
	var ss []shares.Share
	for _, h := range c.Holders {
		ws, err := h.Holder.Release(ctx, n.Name, next)
		if err != nil {
			continue
		}
		for _, w := range ws {
			ss = append(ss, shares.Share{Index: w.Index, Value: w.Value})
		}
	}
	defer shares.ZeroShares(ss)
	sort.Slice(ss, func(i, j int) bool { return ss[i].Index < ss[j].Index })
	t := cur.Threshold
	if st, err := n.Vault.SealStatus(ctx); err == nil && st.T > 0 {
		t = st.T
	}
	if len(ss) < t {
		return "", fmt.Errorf("%w: only %d shares of staged generation %d could be released for %s (threshold %d): start the holders and rerun", ErrUndecided, len(ss), next, n.Name, t)
	}
	if len(ss) > t {
		if bad, err := shares.CheckConsistent(ss, t); err != nil {
			return "", fmt.Errorf("staged generation %d: %w (indices %v): nothing was changed", next, err, bad)
		}
	}
	if _, err := c.Submit(ctx, n, ss[:t]); err != nil {
		return "", fmt.Errorf("%w: neither generation %d nor %d unseals %s: %w", ErrUndecided, cur.Generation, next, n.Name, err)
	}
	if err := CommitInit(ctx, c.Holders, next, c.Options); err != nil {
		return "", fmt.Errorf("%w: vault uses generation %d; rerun 'unsealer rekey --recover' when the holders are up", err, next)
	}
	return fmt.Sprintf("vault uses generation %d (it unsealed %s): committed it on every holder (%v had it staged)", next, n.Name, staged), nil
}

// staged finds the holders that hold generation gen staged, by asking
// each to release it for the rekey node: a holder that does not hold it
// denies with generation_mismatch, one that does releases it (the node is
// sealed) or denies with target_not_sealed. Every probe is audited.
func (c RecoverConfig) staged(ctx context.Context, gen uint64) ([]string, error) {
	var mu sync.Mutex
	var out, unknown []string
	forEach(c.Holders, func(h HolderRef) {
		ws, err := h.Holder.Release(ctx, c.Node.Name, gen)
		for _, w := range ws {
			shares.Zero(w.Value)
		}
		mu.Lock()
		defer mu.Unlock()
		d, isDenial := policy.AsDenial(err)
		switch {
		case err == nil || isDenial && d.Reason == policy.ReasonTargetNotSealed:
			out = append(out, h.ID)
		case isDenial && d.Reason == policy.ReasonGenerationMismatch:
		default:
			unknown = append(unknown, fmt.Sprintf("%s: %v", h.ID, err))
		}
	})
	sort.Strings(out)
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return out, fmt.Errorf("%w: cannot tell whether these holders have generation %d staged: %v: fix them and rerun", ErrUndecided, gen, unknown)
	}
	return out, nil
}
