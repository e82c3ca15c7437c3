package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// errNoQuorum and errTooFewShares say why shares could not be collected.
var (
	errNoQuorum     = errors.New("no manifest is held by a majority of holders")
	errTooFewShares = errors.New("too few verified shares reachable")
)

// collected is a verified set of shares for one node.
type collected struct {
	manifest shares.Manifest
	shares   []shares.Share // distinct, verified, sorted by index
	// reachable is how many verified shares were seen; answered is how many
	// holders answered the manifest call.
	reachable, answered int
}

func (s *collected) zero() { shares.ZeroShares(s.shares) }

type manifestAnswer struct {
	ref HolderRef
	m   shares.Manifest
	err error
}

// agree asks every live holder for its manifest in parallel and returns the
// one a majority of all holders agree on, with the holders that hold it.
// It returns as soon as a majority agrees, so a slow holder does not hold
// the unseal up.
func (c *Coordinator) agree(ctx context.Context, live []HolderRef, total int) (shares.Manifest, []HolderRef, int, error) {
	need := total/2 + 1
	ch := make(chan manifestAnswer, len(live))
	for _, ref := range live {
		go func() {
			m, err := ref.Holder.Manifest(ctx)
			ch <- manifestAnswer{ref: ref, m: m.Shares(), err: err}
		}()
	}
	byHash := map[shares.Digest][]HolderRef{}
	manifests := map[shares.Digest]shares.Manifest{}
	answered := 0
	for range live {
		a := <-ch
		if a.err != nil {
			c.o.Logger.Warn("holder did not give its manifest", "holder", a.ref.ID, "err", a.err)
			continue
		}
		if a.m.Generation == 0 {
			c.o.Logger.Warn("holder holds no shares yet", "holder", a.ref.ID)
			continue
		}
		if err := a.m.Validate(); err != nil {
			c.o.Logger.Warn("holder sent a malformed manifest", "holder", a.ref.ID, "err", err)
			continue
		}
		answered++
		h := a.m.Hash()
		byHash[h] = append(byHash[h], a.ref)
		manifests[h] = a.m
		if len(byHash[h]) >= need {
			return a.m, byHash[h], answered, nil
		}
	}
	return shares.Manifest{}, nil, answered, fmt.Errorf("%w: %d of %d holders answered, %d needed to agree", errNoQuorum, answered, total, need)
}

type releaseAnswer struct {
	ref    HolderRef
	shares []sharerpc.Share
	err    error
}

// collect gathers a threshold of verified shares for node from the holders
// that hold the majority manifest. It stops asking as soon as it has them.
func (c *Coordinator) collect(ctx context.Context, node string) (*collected, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.HolderTimeout)
	defer cancel()
	live := c.holders.Live()
	c.o.Metrics.holdersAlive.Set(float64(len(live)))
	m, agreeing, answered, err := c.agree(ctx, live, c.holders.Total())
	if err != nil {
		return &collected{answered: answered}, err
	}
	out := &collected{manifest: m, answered: answered}
	ch := make(chan releaseAnswer, len(agreeing))
	for _, ref := range agreeing {
		go func() {
			ss, err := ref.Holder.Release(ctx, node, m.Generation)
			ch <- releaseAnswer{ref: ref, shares: ss, err: err}
		}()
	}
	have := map[uint8]bool{}
	answeredReleases := 0
	for range agreeing {
		a := <-ch
		answeredReleases++
		if a.err != nil {
			c.o.Logger.Warn("holder did not release its shares", "holder", a.ref.ID, "node", node, "err", a.err)
			continue
		}
		for _, w := range a.shares {
			s := shares.Share{Index: w.Index, Value: w.Value}
			if err := m.Verify(s); err != nil {
				c.o.Metrics.badShares.WithLabelValues(a.ref.ID).Inc()
				c.o.Logger.Error("holder sent a share that fails the manifest; it will not be submitted",
					"holder", a.ref.ID, "index", s.Index, "generation", m.Generation, "err", err)
				shares.Zero(s.Value)
				continue
			}
			if have[s.Index] {
				shares.Zero(s.Value)
				continue
			}
			have[s.Index] = true
			out.shares = append(out.shares, s)
		}
		if len(out.shares) >= m.Threshold {
			cancel() // the others are not needed
			break
		}
	}
	// Late answers are zeroed as they arrive.
	go func(pending int) {
		for ; pending > 0; pending-- {
			for _, w := range (<-ch).shares {
				shares.Zero(w.Value)
			}
		}
	}(len(agreeing) - answeredReleases)
	out.reachable = len(out.shares)
	c.o.Metrics.sharesReachable.Set(float64(out.reachable))
	c.o.Metrics.threshold.Set(float64(m.Threshold))
	if len(out.shares) < m.Threshold {
		out.zero()
		out.shares = nil
		return out, fmt.Errorf("%w: %d of %d verified shares reachable", errTooFewShares, out.reachable, m.Threshold)
	}
	sort.Slice(out.shares, func(i, j int) bool { return out.shares[i].Index < out.shares[j].Index })
	return out, nil
}
