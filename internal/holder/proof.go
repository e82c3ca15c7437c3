package holder

import (
	"context"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
)

// How a holder learns which generation unseals Vault.
//
// A holder holds fewer shares than the threshold, so it never sees the key
// work. What it can see is this: it released generation G to unseal node X
// (the policy had just seen X sealed, by the holder's own check), and then
// its own check sees X unsealed. The holder takes that as proof that G
// unseals Vault, and records it in the store (shares.Store.Prove). The last
// release for X before X is seen unsealed is the one that counts: a
// coordinator that tries the committed generation, is refused by Vault and
// then tries the staged one asks for the staged one last, and a node that
// is still sealed when the holder releases again was not unsealed by the
// earlier release.
//
// A proof lets the store drop generations older than the proven one (never
// the last two committed), lets Commit make a proven staged generation
// current, and lets Abort drop a staged generation once another one has
// unsealed a node since it was staged. A proof can be wrong only if
// someone unseals X with shares that did not come from this holder's last
// release in between (a coordinator holding the other holders' shares, or
// a person typing keys); the store's "last two are always kept" rule is the
// margin for that. An operator can also say so explicitly:
// `holder confirm-generation G`.
const (
	// ProofPoll is how often the holder checks a node it released shares
	// for, until it sees the node unsealed.
	ProofPoll = 200 * time.Millisecond
	// ProofWatchFor bounds that watch: a coordinator submits within a
	// few seconds of a release, so a node still sealed after this was not
	// unsealed by it.
	ProofWatchFor = 2 * time.Minute
)

type proofs struct {
	mu       sync.Mutex
	pending  map[string]uint64 // node -> generation last released for it
	watching map[string]bool
	wg       sync.WaitGroup
	// checking serializes checkProof: a release leaves pending only once
	// its proof is in the store, so a write that settles the proofs first
	// (settleProofs) waits for a proof the watch is recording instead of
	// deciding without it.
	checking sync.Mutex
}

// released notes an unseal release of gen for node and watches the node.
func (s *Service) released(node string, gen uint64) {
	p := &s.proofs
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[node] = gen
	if p.watching[node] || s.ctx.Err() != nil {
		return
	}
	p.watching[node] = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s.watchProof(node)
	}()
}

// watchProof polls node until it is seen unsealed, the watch bound passes
// or the service closes.
func (s *Service) watchProof(node string) {
	defer func() {
		p := &s.proofs
		p.mu.Lock()
		defer p.mu.Unlock()
		p.watching[node] = false
		// A release that came in while this watch was ending needs a
		// watch of its own.
		if _, ok := p.pending[node]; ok && s.ctx.Err() == nil {
			p.watching[node] = true
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				s.watchProof(node)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(s.ctx, ProofWatchFor)
	defer cancel()
	t := time.NewTicker(ProofPoll)
	defer t.Stop()
	for {
		// The first look waits a poll: right after a release the node
		// is still sealed, and the unseal in progress needs Vault more.
		select {
		case <-ctx.Done():
			s.proofs.mu.Lock()
			delete(s.proofs.pending, node)
			s.proofs.mu.Unlock()
			return
		case <-t.C:
		}
		if done := s.checkProof(ctx, node); done {
			return
		}
	}
}

// hasPending reports whether a release waits for its proof.
func (s *Service) hasPending() bool {
	s.proofs.mu.Lock()
	defer s.proofs.mu.Unlock()
	return len(s.proofs.pending) > 0
}

// settleProofs checks every node with a pending release once, now: the
// store writes call it so that their decision does not wait for the poll.
func (s *Service) settleProofs(ctx context.Context) {
	s.proofs.mu.Lock()
	var nodes []string
	for n := range s.proofs.pending {
		nodes = append(nodes, n)
	}
	s.proofs.mu.Unlock()
	for _, n := range nodes {
		s.checkProof(ctx, n)
	}
}

// checkProof looks at node once. If it is unsealed, the generation last
// released for it is proven. It reports whether nothing is pending for
// node any more.
func (s *Service) checkProof(ctx context.Context, node string) bool {
	p := &s.proofs
	p.checking.Lock()
	defer p.checking.Unlock()
	p.mu.Lock()
	_, ok := p.pending[node]
	p.mu.Unlock()
	if !ok {
		return true
	}
	n := s.nodes[node]
	if n == nil {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	st, err := n.SealStatus(cctx)
	cancel()
	if err != nil || !st.Initialized || st.Sealed {
		return false
	}
	p.mu.Lock()
	gen, ok := p.pending[node]
	p.mu.Unlock()
	if !ok {
		return true
	}
	s.prove(gen, "vault node "+node+" seen unsealed after this holder released this generation for it")
	// Only now does the release leave pending (a newer release for the
	// node, made meanwhile, stays and is checked again).
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending[node] == gen {
		delete(p.pending, node)
		return true
	}
	return false
}

// prove records gen as proven, audits it and refreshes the cache. A proof
// the store holds already (every unseal with the same generation) costs
// nothing.
func (s *Service) prove(gen uint64, why string) {
	if st, _, _ := s.Current(); st.LastProof == gen && st.Proven >= gen {
		return
	}
	entry := audit.Entry{Event: "prove", Peer: s.id, Generation: gen, Reason: why}
	if err := s.store.Prove(gen); err != nil {
		entry.Decision, entry.Detail = "error", err.Error()
		s.record(entry)
		s.log.Warn("could not record which generation unsealed vault", "generation", gen, "why", why, "err", err)
		return
	}
	entry.Decision = "ok"
	s.record(entry)
	s.log.Info("generation proven: it unsealed a vault node", "generation", gen, "why", why)
	if err := s.refresh(); err != nil {
		s.log.Error("failed to re-read the store after a proof", "err", err)
	}
}
