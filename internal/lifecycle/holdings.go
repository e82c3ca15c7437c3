package lifecycle

import (
	"context"
	"maps"
	"slices"
	"sort"
)

// Holdings is what the holders hold: each one's committed generation (its
// manifest) and the generation it has staged, if any. A staged generation
// whose fate is unknown may be the only copy of the key Vault uses, so
// every decision to keep, commit or drop one starts here.
type Holdings struct {
	Agreement
	// Staged is the staged generation of each holder that has one, as its
	// Manifest answer reports it.
	Staged map[string]uint64
	// StagedNonce is the Vault rekey nonce a holder's staged generation
	// was staged under, for the holders that report it. The share
	// service's Manifest answer does not carry it yet, so it stays empty
	// and provesOld falls back on Vault's verification step; a missing
	// entry means unknown.
	StagedNonce map[string]string
}

// ReadHoldings asks every holder for its manifest: its committed
// generation, and the generation it has staged, if any (both are in the
// share service's Manifest answer).
func ReadHoldings(ctx context.Context, hs []HolderRef) Holdings {
	h := Holdings{Agreement: Agree(ctx, hs), Staged: map[string]uint64{}, StagedNonce: map[string]string{}}
	for id, m := range h.Agreement.Staged {
		h.Staged[id] = m.Generation
	}
	return h
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
