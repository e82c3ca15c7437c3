package shares

import (
	"errors"
	"fmt"

	"github.com/hashicorp/vault/shamir"
)

// Errors returned by CheckConsistent.
var (
	// ErrTooFewShares is returned when fewer than threshold+1 shares are
	// given: with exactly the threshold every set combines to something.
	ErrTooFewShares = errors.New("need at least threshold+1 shares to check consistency")
	// ErrInconsistent is returned when the shares do not all lie on one
	// polynomial. When the bad shares can be told apart, the error names
	// their indices.
	ErrInconsistent = errors.New("shares are inconsistent")
)

// maxSubsets bounds the Combine calls CheckConsistent makes.
const maxSubsets = 5000

// CheckConsistent combines every threshold-sized subset of ss with Vault's
// own Shamir code and compares the secrets.
//
// With threshold+1 shares it detects an inconsistency but cannot say which
// share is bad: every subset is then unique. With threshold+2 or more and a
// single bad share, the secret that most subsets agree on wins, and the
// shares outside all agreeing subsets are returned as bad. It returns nil
// and no indices when all subsets agree. It never returns the secret.
func CheckConsistent(ss []Share, threshold int) (bad []uint8, err error) {
	if threshold < 2 || len(ss) < threshold+1 {
		return nil, fmt.Errorf("%w: have %d, threshold %d", ErrTooFewShares, len(ss), threshold)
	}
	if err := CheckDistinct(ss); err != nil {
		return nil, err
	}
	type tally struct {
		count int
		used  map[uint8]bool
	}
	tallies := map[Digest]*tally{}
	subsets := 0
	var loopErr error
	forEachSubset(len(ss), threshold, func(idx []int) bool {
		subsets++
		if subsets > maxSubsets {
			loopErr = fmt.Errorf("too many shares to check (%d subsets or more): check fewer at a time", maxSubsets)
			return false
		}
		parts := make([][]byte, len(idx))
		for i, j := range idx {
			parts[i] = ss[j].Value
		}
		secret, err := shamir.Combine(parts)
		if err != nil {
			loopErr = fmt.Errorf("failed to combine shares: %w", err)
			return false
		}
		key := ShareDigest(0, Share{Value: secret})
		Zero(secret)
		t := tallies[key]
		if t == nil {
			t = &tally{used: map[uint8]bool{}}
			tallies[key] = t
		}
		t.count++
		for _, j := range idx {
			t.used[ss[j].Index] = true
		}
		return true
	})
	if loopErr != nil {
		return nil, loopErr
	}
	if len(tallies) == 1 {
		return nil, nil
	}
	var best, second *tally
	for _, t := range tallies {
		switch {
		case best == nil || t.count > best.count:
			best, second = t, best
		case second == nil || t.count > second.count:
			second = t
		}
	}
	if best.count == second.count {
		return nil, fmt.Errorf("%w: %d shares give %d different secrets and no majority; verify each against the manifest",
			ErrInconsistent, len(ss), len(tallies))
	}
	for _, s := range ss {
		if !best.used[s.Index] {
			bad = append(bad, s.Index)
		}
	}
	return bad, fmt.Errorf("%w: share indices %v disagree with the rest", ErrInconsistent, bad)
}

// forEachSubset calls fn with every k-subset of 0..n-1 in lexicographic
// order until fn returns false.
func forEachSubset(n, k int, fn func([]int) bool) {
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	for {
		if !fn(idx) {
			return
		}
		i := k - 1
		for i >= 0 && idx[i] == n-k+i {
			i--
		}
		if i < 0 {
			return
		}
		idx[i]++
		for j := i + 1; j < k; j++ {
			idx[j] = idx[j-1] + 1
		}
	}
}
