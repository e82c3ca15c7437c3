package unseal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// answer is one holder call's outcome: a manifest or a release.
type answer struct {
	ref      HolderRef
	manifest bool
	m        shares.Manifest
	shares   []sharerpc.Share
	err      error
}

// holderState is what one holder (by ID, over all its addresses) has said.
type holderState struct {
	// waiting are addresses whose manifest answered before the majority
	// was known, with what they answered.
	waiting []answer
	// matched are addresses whose manifest matches the majority, not yet
	// asked to release.
	matched []HolderRef
	// releasing is set while one release of this holder runs; the next
	// address is asked only if it fails.
	releasing, released bool
}

// run is one collection in progress. Only its loop goroutine touches it.
type run struct {
	ctx         context.Context
	o           Options
	node        string
	res         *Result
	tally       *Tally
	agreed      bool
	byID        map[string]*holderState
	ch          chan answer
	outstanding int
	have        map[uint8]bool
}

func (r *run) state(id string) *holderState {
	s, ok := r.byID[id]
	if !ok {
		s = &holderState{}
		r.byID[id] = s
	}
	return s
}

// loop handles answers until a threshold is in hand (or, with Every,
// until every call has answered), or ctx ends.
func (r *run) loop(ctx context.Context) {
	for r.outstanding > 0 {
		var a answer
		select {
		case a = <-r.ch:
		case <-ctx.Done():
			return
		}
		r.outstanding--
		if a.manifest {
			r.onManifest(a)
			continue
		}
		r.onRelease(a)
		if !r.o.Every && len(r.res.Shares) >= r.res.Manifest.Threshold && r.agreed {
			return
		}
	}
}

func (r *run) onManifest(a answer) {
	id := a.ref.ID
	switch {
	case a.err != nil:
		r.o.Logger.Warn("holder did not give its manifest", "holder", id, "err", a.err)
		r.res.problem(id, "manifest: %v", a.err)
		return
	case a.m.Generation == 0:
		if r.o.Which == Current {
			r.o.Logger.Warn("holder holds no shares yet", "holder", id)
		}
		r.res.problem(id, "holds no %s generation", r.o.Which)
		return
	case a.m.Validate() != nil:
		r.o.Logger.Warn("holder sent a malformed manifest", "holder", id, "err", a.m.Validate())
		r.res.problem(id, "malformed manifest: %v", a.m.Validate())
		return
	}
	if r.agreed {
		r.match(a)
		return
	}
	if r.tally.Add(id, a.m) {
		r.res.Answered++
	}
	s := r.state(id)
	s.waiting = append(s.waiting, a)
	m, _, ok := r.tally.Majority()
	if !ok {
		return
	}
	r.agreed, r.res.Manifest = true, m
	for _, s := range r.byID {
		w := s.waiting
		s.waiting = nil
		for _, a := range w {
			r.match(a)
		}
	}
}

// match asks a holder whose manifest answer arrived to release, if the
// answer is the majority manifest.
func (r *run) match(a answer) {
	id := a.ref.ID
	if r.tally != nil && r.tally.Add(id, a.m) {
		r.res.Answered++ // a late answer, after the majority was known
	}
	if !a.m.Equal(r.res.Manifest) {
		r.res.problem(id, "holds generation %d with a manifest the majority does not hold", a.m.Generation)
		return
	}
	s := r.state(id)
	s.matched = append(s.matched, a.ref)
	r.next(id)
}

// next starts a release from the holder's next matching address, unless
// one runs or succeeded already.
func (r *run) next(id string) {
	s := r.state(id)
	if s.releasing || s.released || len(s.matched) == 0 {
		return
	}
	ref := s.matched[0]
	s.matched = s.matched[1:]
	s.releasing = true
	r.res.Asked = append(r.res.Asked, id)
	r.outstanding++
	gen, node := r.res.Manifest.Generation, r.node
	go func() {
		cctx, cancel := context.WithTimeout(r.ctx, r.o.Timeout)
		defer cancel()
		ss, err := r.o.Release(cctx, ref, node, gen)
		r.ch <- answer{ref: ref, shares: ss, err: err}
	}()
}

func (r *run) onRelease(a answer) {
	id := a.ref.ID
	s := r.state(id)
	s.releasing = false
	if a.err != nil {
		r.o.Logger.Warn("holder did not release its shares", "holder", id, "node", r.node, "err", a.err)
		r.res.problem(id, "release: %v", a.err)
		r.next(id)
		return
	}
	s.released = true
	m := r.res.Manifest
	if r.have == nil {
		r.have = map[uint8]bool{}
	}
	for _, w := range a.shares {
		sh := shares.Share{Index: w.Index, Value: w.Value}
		if err := m.Verify(sh); err != nil {
			if r.o.BadShare != nil {
				r.o.BadShare(id)
			}
			r.o.Logger.Error("holder sent a share that fails the manifest; it will not be submitted",
				"holder", id, "index", sh.Index, "generation", m.Generation, "err", err)
			r.res.problem(id, "share %d: %v: not used", sh.Index, err)
			shares.Zero(w.Value)
			continue
		}
		if r.have[sh.Index] {
			shares.Zero(w.Value)
			continue
		}
		r.have[sh.Index] = true
		r.res.Shares = append(r.res.Shares, locked(sh))
		shares.Zero(w.Value)
	}
}

// locked copies s into a buffer locked in RAM where the OS allows.
func locked(s shares.Share) shares.Share {
	b := shares.LockedBytes(len(s.Value))
	copy(b, s.Value)
	return shares.Share{Index: s.Index, Value: b}
}

// drain zeroes the answers of the calls still running, as they arrive.
func (r *run) drain() {
	go func(n int, ch <-chan answer, log *slog.Logger, node string) {
		for ; n > 0; n-- {
			a := <-ch
			for _, w := range a.shares {
				shares.Zero(w.Value)
			}
			lateAnswer(log, node, a)
		}
	}(r.outstanding, r.ch, r.o.Logger, r.node)
	r.outstanding = 0
}

// lateAnswer logs an answer that came after the collection ended, so that
// every call to a holder is accounted for in the log: a holder that
// refused (a tampered store, a denial) is named even when the others had
// already given enough, and a call cut short says so, at debug level.
func lateAnswer(log *slog.Logger, node string, a answer) {
	what := "release"
	if a.manifest {
		what = "manifest"
	}
	switch {
	case a.err == nil:
		log.Debug("holder answered after the collection ended; its answer is discarded", "holder", a.ref.ID, "node", node, "call", what)
	case errors.Is(a.err, context.Canceled):
		log.Debug("call to holder cut short: the collection already had what it needed", "holder", a.ref.ID, "node", node, "call", what)
	case a.manifest:
		log.Warn("holder did not give its manifest", "holder", a.ref.ID, "err", a.err, "late", true)
	default:
		log.Warn("holder did not release its shares", "holder", a.ref.ID, "node", node, "err", a.err, "late", true)
	}
}

func (r *run) finish() (*Result, error) {
	res, m := r.res, r.res.Manifest
	res.Reachable = len(res.Shares)
	if len(res.Shares) < m.Threshold || m.Threshold == 0 {
		res.Zero()
		res.Shares = nil
		return res, fmt.Errorf("%w: %d of %d verified shares of generation %d reachable for %s (%s)",
			ErrTooFewShares, res.Reachable, m.Threshold, m.Generation, r.node, res.Why())
	}
	sort.Slice(res.Shares, func(i, j int) bool { return res.Shares[i].Index < res.Shares[j].Index })
	return res, nil
}
