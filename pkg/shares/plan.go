package shares

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Default plan values: 5 shares, threshold 3, dealt 2/2/1.
const (
	DefaultShares    = 5
	DefaultThreshold = 3
)

// DefaultWeights is how many shares each of three holders gets by default.
var DefaultWeights = []int{2, 2, 1}

// ErrUnsafePlan is returned by Plan.Validate for a plan that is well formed
// but unsafe: one holder alone reaches the threshold, or losing one holder
// leaves too few shares.
var ErrUnsafePlan = errors.New("unsafe allotment plan")

// Allotment is the number of shares one holder gets.
type Allotment struct {
	Holder string
	Count  int
}

// Plan is how an unseal key is split and dealt.
type Plan struct {
	Shares    int
	Threshold int
	Holders   []Allotment
	// AllowFragile accepts a plan in which the loss of some single holder
	// leaves fewer than Threshold shares. It never allows a single holder
	// to reach Threshold alone.
	AllowFragile bool
}

// DefaultPlan deals 5 shares with threshold 3 as 2/2/1 to the three holders.
func DefaultPlan(holders [3]string) Plan {
	p := Plan{Shares: DefaultShares, Threshold: DefaultThreshold}
	for i, h := range holders {
		p.Holders = append(p.Holders, Allotment{Holder: h, Count: DefaultWeights[i]})
	}
	return p
}

// Validate checks that the plan is well formed and safe, and says what to
// change when it is not.
func (p Plan) Validate() error {
	if p.Threshold < 2 {
		return fmt.Errorf("threshold %d: must be at least 2 so that no share alone unseals", p.Threshold)
	}
	if p.Shares < p.Threshold || p.Shares > 255 {
		return fmt.Errorf("shares %d: must be between the threshold (%d) and 255", p.Shares, p.Threshold)
	}
	if len(p.Holders) < 2 {
		return fmt.Errorf("%d holders: at least 2 are needed so that no single machine holds the key", len(p.Holders))
	}
	sum := 0
	seen := map[string]bool{}
	for _, h := range p.Holders {
		if h.Holder == "" {
			return errors.New("a holder has no name: give every holder its ID")
		}
		if seen[h.Holder] {
			return fmt.Errorf("holder %s: listed twice", h.Holder)
		}
		seen[h.Holder] = true
		if h.Count < 1 {
			return fmt.Errorf("holder %s: gets %d shares, want at least 1", h.Holder, h.Count)
		}
		sum += h.Count
	}
	if sum != p.Shares {
		return fmt.Errorf("holders get %d shares in all, but the plan has %d: make the counts add up", sum, p.Shares)
	}
	for _, h := range p.Holders {
		if h.Count >= p.Threshold {
			return fmt.Errorf("%w: holder %s alone gets %d shares, which reaches the threshold %d", ErrUnsafePlan, h.Holder, h.Count, p.Threshold)
		}
	}
	if !p.AllowFragile && p.Properties().ToleratedFailures < 1 {
		return fmt.Errorf("%w: if the holder with the most shares is down, the rest hold fewer than %d; add shares or holders, or allow a fragile plan explicitly", ErrUnsafePlan, p.Threshold)
	}
	return nil
}

// Properties describes what a plan can survive.
type Properties struct {
	// MaxSingle is the most shares any one holder gets.
	MaxSingle int
	// MinimalCoalitions are the sets of holders that reach the threshold
	// and have no smaller subset that does, each sorted by name.
	MinimalCoalitions [][]string
	// ToleratedFailures is the largest k such that any k holders may be
	// down and the others still reach the threshold.
	ToleratedFailures int
}

// Properties enumerates every coalition of holders (there are few).
func (p Plan) Properties() Properties {
	n := len(p.Holders)
	var props Properties
	for _, h := range p.Holders {
		props.MaxSingle = max(props.MaxSingle, h.Count)
	}
	if n > 16 {
		return props // enumeration is for small plans; Validate bounds n in practice
	}
	reaches := func(mask int) bool {
		sum := 0
		for i := range n {
			if mask&(1<<i) != 0 {
				sum += p.Holders[i].Count
			}
		}
		return sum >= p.Threshold
	}
	full := 1<<n - 1
	for mask := 1; mask <= full; mask++ {
		if !reaches(mask) {
			continue
		}
		minimal := true
		for i := range n {
			if mask&(1<<i) != 0 && reaches(mask&^(1<<i)) {
				minimal = false
				break
			}
		}
		if minimal {
			var names []string
			for i := range n {
				if mask&(1<<i) != 0 {
					names = append(names, p.Holders[i].Holder)
				}
			}
			sort.Strings(names)
			props.MinimalCoalitions = append(props.MinimalCoalitions, names)
		}
	}
	sort.Slice(props.MinimalCoalitions, func(i, j int) bool {
		return strings.Join(props.MinimalCoalitions[i], ",") < strings.Join(props.MinimalCoalitions[j], ",")
	})
	// k failures are tolerated if every set of n-k survivors reaches t.
	for k := 1; k < n; k++ {
		ok := true
		for mask := 0; mask <= full && ok; mask++ {
			if popcount(mask) == n-k && !reaches(mask) {
				ok = false
			}
		}
		if !ok {
			break
		}
		props.ToleratedFailures = k
	}
	return props
}

// Indices returns the 1-based share indices each holder gets, dealt in plan
// order: with 2/2/1 the first holder gets 1,2, the second 3,4, the third 5.
func (p Plan) Indices() map[string][]uint8 {
	out := make(map[string][]uint8, len(p.Holders))
	next := 1
	for _, h := range p.Holders {
		for range h.Count {
			out[h.Holder] = append(out[h.Holder], uint8(next))
			next++
		}
	}
	return out
}

func popcount(x int) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}
