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
	which    which
	manifest shares.Manifest
	shares   []shares.Share // distinct, verified, sorted by index
	// reachable is how many verified shares were seen; answered is how many
	// holders answered the manifest call.
	reachable, answered int
}

func (s *collected) zero() { shares.ZeroShares(s.shares) }

// which names the generation a collection is for, among the ones every
// holder reports in its Manifest answer.
type which int

const (
	whichCurrent  which = iota // the committed generation
	whichStaged                // staged by an unfinished init or rekey
	whichPrevious              // the committed one before, while kept
)

func (w which) String() string {
	switch w {
	case whichStaged:
		return "staged"
	case whichPrevious:
		return "previous"
	}
	return "committed"
}

// pick returns the manifest of w's generation from a holder's answer, or a
// zero manifest if the holder holds none.
func (w which) pick(m sharerpc.Manifest) shares.Manifest {
	switch w {
	case whichStaged:
		if m.Staged != nil {
			return m.Staged.Shares()
		}
		return shares.Manifest{}
	case whichPrevious:
		if m.Previous != nil {
			return m.Previous.Shares()
		}
		return shares.Manifest{}
	}
	return m.Shares()
}

type manifestAnswer struct {
	ref HolderRef
	m   shares.Manifest
	err error
}

// agreement is the majority manifest, the holders known to hold it, and the
// manifest answers still to come.
type agreement struct {
	manifest shares.Manifest
	agreeing []HolderRef
	answered int
	late     <-chan manifestAnswer
	pending  int
}

// agree asks every live holder for its manifest in parallel and returns the
// one of w's generation that a majority of all holders agree on, with the
// holders that hold it. It returns as soon as a majority agrees, so a slow
// holder does not hold the unseal up.
func (c *Coordinator) agree(ctx context.Context, live []HolderRef, total int, w which) (agreement, error) {
	need := total/2 + 1
	ch := make(chan manifestAnswer, len(live))
	for _, ref := range live {
		go func() {
			m, err := ref.Holder.Manifest(ctx)
			ch <- manifestAnswer{ref: ref, m: w.pick(m), err: err}
		}()
	}
	byHash := map[shares.Digest][]HolderRef{}
	manifests := map[shares.Digest]shares.Manifest{}
	answered := 0
	for received := 1; received <= len(live); received++ {
		a := <-ch
		if a.err != nil {
			c.o.Logger.Warn("holder did not give its manifest", "holder", a.ref.ID, "err", a.err)
			continue
		}
		if a.m.Generation == 0 {
			if w == whichCurrent {
				c.o.Logger.Warn("holder holds no shares yet", "holder", a.ref.ID)
			}
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
			return agreement{manifest: a.m, agreeing: byHash[h], answered: answered, late: ch, pending: len(live) - received}, nil
		}
	}
	return agreement{answered: answered}, fmt.Errorf("%w: %d of %d holders answered with a %s generation, %d needed to agree", errNoQuorum, answered, total, w, need)
}

type releaseAnswer struct {
	ref    HolderRef
	shares []sharerpc.Share
	err    error
}

// collect gathers a threshold of verified shares of w's generation for node
// from the holders that hold the majority manifest. It asks the first
// holders that agree at once, then any holder whose matching manifest
// arrives later, and stops as soon as it has a threshold, unless every is
// set: then it asks every holder that holds the manifest and waits for
// them all (within the holder timeout), so that each one's last release
// before the unseal is this generation (the fallback wants the holders'
// proofs right; see internal/holder/proof.go).
func (c *Coordinator) collect(ctx context.Context, node string, w which, every bool) (*collected, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.HolderTimeout)
	defer cancel()
	live := c.holders.Live()
	c.o.Metrics.holdersAlive.Set(float64(len(live)))
	ag, err := c.agree(ctx, live, c.holders.Total(), w)
	if err != nil {
		return &collected{answered: ag.answered}, err
	}
	m := ag.manifest
	out := &collected{which: w, manifest: m, answered: ag.answered}
	ch := make(chan releaseAnswer, len(live))
	release := func(ref HolderRef) {
		go func() {
			ss, err := ref.Holder.Release(ctx, node, m.Generation)
			ch <- releaseAnswer{ref: ref, shares: ss, err: err}
		}()
	}
	for _, ref := range ag.agreeing {
		release(ref)
	}
	asked, answered := len(ag.agreeing), 0
	late, pending := ag.late, ag.pending
	have := map[uint8]bool{}
	for answered < asked || pending > 0 {
		if answered == asked && pending > 0 {
			// Every release so far is in and short: wait for a late
			// manifest that matches, and ask that holder too.
			la := <-late
			pending--
			if la.err == nil && la.m.Generation == m.Generation && la.m.Validate() == nil && la.m.Hash() == m.Hash() {
				out.answered++
				release(la.ref)
				asked++
			}
			continue
		}
		a := <-ch
		answered++
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
		if len(out.shares) >= m.Threshold && !every {
			cancel() // the others are not needed
			break
		}
	}
	// Late answers are zeroed as they arrive.
	go func(n int) {
		for ; n > 0; n-- {
			for _, w := range (<-ch).shares {
				shares.Zero(w.Value)
			}
		}
	}(asked - answered)
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
