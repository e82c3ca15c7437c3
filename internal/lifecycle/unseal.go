package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// ErrRejected is returned by Submit when the node took a full threshold of
// shares and refused them: they do not combine to its key. It is
// unseal.ErrRejected.
var ErrRejected = unseal.ErrRejected

// Submit unseals one node with a threshold of shares of one generation,
// one by one, and writes progress to o.Out. A node that is unsealed
// already is left alone. Partial progress left by another attempt is reset
// first, so that shares of two generations never meet in one attempt.
func (o Options) Submit(ctx context.Context, n Node, ss []shares.Share) (vaultnode.Status, error) {
	o.defaults()
	st, err := n.Vault.SealStatus(ctx)
	if err != nil {
		return st, fmt.Errorf("vault node %s: %w: check that it is running, then rerun", n.Name, err)
	}
	switch {
	case !st.Initialized:
		return st, fmt.Errorf("vault node %s is not initialized: run 'unsealer init'", n.Name)
	case !st.Sealed:
		o.printf("%s: already unsealed", n.Name)
		return st, nil
	case st.T != len(ss):
		return st, fmt.Errorf("vault node %s wants %d shares, %d were given: is the manifest of another Vault?", n.Name, st.T, len(ss))
	}
	if st.Progress > 0 {
		o.printf("%s: resetting partial progress %d/%d left by another attempt", n.Name, st.Progress, st.T)
		if st, err = n.Vault.ResetUnseal(ctx); err != nil {
			return st, fmt.Errorf("vault node %s: failed to reset the earlier attempt: %w", n.Name, err)
		}
	}
	st, err = unseal.Submit(ctx, n.Vault, ss, func(st vaultnode.Status) {
		if st.Sealed {
			o.printf("%s: %d/%d", n.Name, st.Progress, st.T)
		}
	})
	switch {
	case errors.Is(err, ErrRejected):
		return st, fmt.Errorf("vault node %s: %w: the attempt is discarded; the shares belong to another key", n.Name, err)
	case err != nil:
		return st, fmt.Errorf("vault node %s: %w", n.Name, err)
	case st.Sealed:
		return st, fmt.Errorf("vault node %s is still sealed after %d shares (progress %d/%d): another attempt interfered; rerun", n.Name, len(ss), st.Progress, st.T)
	}
	o.printf("%s: unsealed", n.Name)
	return st, nil
}

// UnsealAll submits ss to every node that is initialized and sealed, and
// returns how many it unsealed. Nodes that cannot be reached are reported
// and skipped.
func (o Options) UnsealAll(ctx context.Context, nodes []Node, ss []shares.Share) (int, error) {
	o.defaults()
	var errs []error
	done := 0
	for _, n := range nodes {
		st, err := n.Vault.SealStatus(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("vault node %s: %w", n.Name, err))
			continue
		}
		if !st.Initialized || !st.Sealed {
			o.printf("%s: %s", n.Name, map[bool]string{true: "already unsealed", false: "not initialized: skipped"}[st.Initialized])
			continue
		}
		if _, err := o.Submit(ctx, n, ss); err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

// UnsealFromHolders unseals every sealed node with shares released by the
// holders (under their policy for the caller's identity, which they audit),
// verified against the majority manifest.
func (o Options) UnsealFromHolders(ctx context.Context, nodes []Node, hs []HolderRef) (int, error) {
	o.defaults()
	a := Agree(ctx, hs)
	if a.Manifest.Generation == 0 {
		return 0, fmt.Errorf("no manifest is held by a majority of the %d holders (%s): type the shares instead (unsealer unseal without --from-holders)", len(hs), a.Unreachable())
	}
	var errs []error
	done := 0
	for _, n := range nodes {
		st, err := n.Vault.SealStatus(ctx)
		if err != nil || !st.Initialized || !st.Sealed {
			if err != nil {
				errs = append(errs, fmt.Errorf("vault node %s: %w", n.Name, err))
			}
			continue
		}
		ss, err := Collect(ctx, a.Agreeing, a.Manifest, n.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("vault node %s: %w", n.Name, err))
			continue
		}
		o.printf("%s: %d verified shares of generation %d from the holders", n.Name, len(ss), a.Manifest.Generation)
		_, err = o.Submit(ctx, n, ss)
		shares.ZeroShares(ss)
		if errors.Is(err, ErrRejected) {
			// The holders' committed generation is not Vault's key: a
			// rekey interrupted between Vault's verify and the holders'
			// commit leaves the new key staged only.
			err = fmt.Errorf("%w: if a rekey was interrupted after vault verified the new shares, the holders hold the new generation staged: run 'unsealer rekey --recover', which tests it on this sealed node and commits it", err)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}
