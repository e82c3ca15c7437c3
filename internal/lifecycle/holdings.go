package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Holdings is what the holders hold: each one's committed generation (its
// manifest) and the generation it has staged, if any. A staged generation
// whose fate is unknown may be the only copy of the key Vault uses, so
// every decision to keep, commit or drop one starts here.
type Holdings struct {
	Agreement
	// Staged is the staged generation of each holder that has one.
	Staged map[string]uint64
	// StagedNonce is the Vault rekey nonce a holder's staged generation
	// was staged under, for the holders that report it; none do yet (see
	// ReadHoldings), and a missing entry means unknown.
	StagedNonce map[string]string
	// StagedUnknown says why a holder's staged generation could not be
	// read.
	StagedUnknown map[string]error
}

// ReadHoldings asks every holder for its manifest and whether it has the
// next generation (its committed one + 1, the only one init and rekey
// stage) staged. node is the Vault node the staged probe names.
//
// The share service's Manifest serves the committed generation only, so
// the staged one is found by a Release probe (stagedProbe), which the
// holders audit. This is the one place that knows how: once the holders
// report their staged generation (and its rekey nonce) in Manifest, only
// this function changes.
func ReadHoldings(ctx context.Context, hs []HolderRef, node string) Holdings {
	h := Holdings{Agreement: Agree(ctx, hs), Staged: map[string]uint64{}, StagedNonce: map[string]string{}, StagedUnknown: map[string]error{}}
	var mu sync.Mutex
	forEach(hs, func(ref HolderRef) {
		cur, ok := h.Current[ref.ID]
		if !ok {
			return // unreachable: Errs says why
		}
		has, err := stagedProbe(ctx, ref.Holder, node, cur+1)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			h.StagedUnknown[ref.ID] = err
		case has:
			h.Staged[ref.ID] = cur + 1
		}
	})
	return h
}

// stagedProbe asks holder hd to release generation gen for node: a holder
// that does not hold it denies with generation_mismatch (the policy checks
// the generation before the target's state); one that does releases it
// (the node is sealed) or denies with target_not_sealed. Anything else
// leaves the question open.
func stagedProbe(ctx context.Context, hd Holder, node string, gen uint64) (bool, error) {
	ws, err := hd.Release(ctx, node, gen)
	for _, w := range ws {
		shares.Zero(w.Value)
	}
	d, isDenial := policy.AsDenial(err)
	switch {
	case err == nil || isDenial && d.Reason == policy.ReasonTargetNotSealed:
		return true, nil
	case isDenial && d.Reason == policy.ReasonGenerationMismatch:
		return false, nil
	}
	return false, fmt.Errorf("cannot tell whether generation %d is staged: %w", gen, err)
}

// Range is the oldest and newest committed generation among the holders
// that answered (0, 0 if none did).
func (h Holdings) Range() (lo, hi uint64) {
	if len(h.Current) == 0 {
		return 0, 0
	}
	lo = ^uint64(0)
	for _, g := range h.Current {
		lo, hi = min(lo, g), max(hi, g)
	}
	return lo, hi
}

// StagedHolders are the holders that have gen staged, sorted.
func (h Holdings) StagedHolders(gen uint64) []string {
	var out []string
	for id, g := range h.Staged {
		if g == gen {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// StagedGens are the distinct staged generations, oldest first.
func (h Holdings) StagedGens() []uint64 {
	gens := slices.Collect(maps.Values(h.Staged))
	slices.Sort(gens)
	return slices.Compact(gens)
}

// Unknown names the holders whose staged generation could not be read.
func (h Holdings) Unknown() string {
	var parts []string
	for id, err := range h.StagedUnknown {
		parts = append(parts, fmt.Sprintf("%s: %v", id, err))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// StagedUnder reports whether every holder with gen staged says it was
// staged under the rekey with nonce; false when any of them does not say.
func (h Holdings) StagedUnder(gen uint64, nonce string) bool {
	ids := h.StagedHolders(gen)
	for _, id := range ids {
		if n, ok := h.StagedNonce[id]; !ok || n != nonce {
			return false
		}
	}
	return len(ids) > 0 && nonce != ""
}
