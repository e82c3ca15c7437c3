package holder

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Manifest returns the public manifest of the current generation, or a
// zero-generation manifest when the holder holds none yet, with the staged
// and previous generations' manifests when it holds them.
func (s *Service) Manifest(_ context.Context, _ sharerpc.Peer) (sharerpc.Manifest, error) {
	s.mu.Lock()
	m, staged, prev, st := s.manifest, s.staged, s.previous, s.state
	s.mu.Unlock()
	out := sharerpc.ManifestFromShares(m)
	out.HolderID = s.id
	if staged != nil {
		w := sharerpc.ManifestFromShares(*staged)
		out.Staged = &w
	}
	if prev != nil {
		w := sharerpc.ManifestFromShares(*prev)
		out.Previous = &w
	}
	out.Proven = st.Proven
	return out, nil
}

// Stage stores a new generation (init and rekey, first phase), if the
// Vault state the holder sees needs it (policy.DecideWrite).
func (s *Service) Stage(ctx context.Context, p sharerpc.Peer, req sharerpc.StageRequest) error {
	entry := audit.Entry{Event: audit.EventStage, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: req.Generation}
	b := &shares.Bundle{HolderID: s.id, Generation: req.Generation, Manifest: req.Manifest.Shares()}
	for _, sh := range req.Shares {
		b.Shares = append(b.Shares, shares.Share{Index: sh.Index, Value: sh.Value})
	}
	defer b.Destroy()
	entry.Indices = b.Indices()
	if err := s.allowWrite(ctx, p, policy.OpStage, req.Generation, req.RekeyNonce, &entry); err != nil {
		return err
	}
	return s.finish(entry, s.store.StageFor(b, req.RekeyNonce))
}

// Commit makes the staged generation current (second phase), if the Vault
// state the holder sees needs it. The generation it replaces is kept.
func (s *Service) Commit(ctx context.Context, p sharerpc.Peer, generation uint64) error {
	entry := audit.Entry{Event: audit.EventCommit, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: generation}
	if err := s.allowWrite(ctx, p, policy.OpCommit, generation, "", &entry); err != nil {
		return err
	}
	return s.finish(entry, s.store.Commit(generation))
}

// Abort drops the staged generation, if the Vault state the holder sees
// proves Vault does not use it.
func (s *Service) Abort(ctx context.Context, p sharerpc.Peer, generation uint64) error {
	entry := audit.Entry{Event: audit.EventAbort, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: generation}
	if err := s.allowWrite(ctx, p, policy.OpAbort, generation, "", &entry); err != nil {
		return err
	}
	return s.finish(entry, s.store.Abort(generation))
}

// allowWrite checks who asks, then the write against the store's state and
// the holder's own look at the Vault nodes. A refusal is audited and
// returned as a denial.
func (s *Service) allowWrite(ctx context.Context, p sharerpc.Peer, op string, gen uint64, nonce string, entry *audit.Entry) error {
	if _, err := s.engine.Load().Authorize(p.ID.String(), sourceAddr(p.Addr)); err != nil {
		return s.deny(*entry, err)
	}
	decide := func() (string, error) {
		st, err := s.store.State()
		if err != nil {
			return "", err
		}
		req := policy.WriteRequest{Op: op, PeerID: p.ID.String(), Generation: gen, RekeyNonce: nonce,
			Held: policy.HeldState{Current: st.Current, Staged: st.Staged, StagedNonce: st.StagedNonce, LastProof: st.LastProof}}
		if policy.NeedsNodes(req) {
			req.Nodes = s.viewNodes(ctx)
		}
		return policy.DecideWrite(req)
	}
	// A release whose node has unsealed since is a proof the decision may
	// need. Writes that delete (an abort; a stage that replaces a staged
	// generation) settle the proofs first, so that they never go by an
	// older proof than the holder could know. A commit deletes nothing:
	// it settles them only if it is refused without.
	st, err := s.store.State()
	if err != nil {
		return s.finish(*entry, err)
	}
	eager := op == policy.OpAbort || (op == policy.OpStage && st.Staged != 0)
	if eager {
		s.settleProofs(ctx)
	}
	rule, err := decide()
	if err != nil && !eager && op == policy.OpCommit && s.hasPending() {
		s.settleProofs(ctx)
		rule, err = decide()
	}
	if _, denied := policy.AsDenial(err); err != nil && !denied {
		return s.finish(*entry, err)
	}
	if err != nil {
		return s.deny(*entry, err)
	}
	entry.Rule = rule
	return nil
}

// viewNodes is the holder's own look at every Vault node it serves, in
// parallel: seal status and, on an unsealed node, its rekey status.
func (s *Service) viewNodes(ctx context.Context) []policy.NodeView {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out := make([]policy.NodeView, 0, len(s.nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := policy.NodeView{Name: name}
			st, err := n.SealStatus(ctx)
			if err != nil {
				v.Err = err
			} else {
				v.Initialized, v.Sealed = st.Initialized, st.Sealed
				if st.Initialized && !st.Sealed {
					rs, err := n.RekeyStatus(ctx)
					if err != nil {
						v.Err = fmt.Errorf("rekey status: %w", err)
					} else {
						v.RekeyStarted, v.RekeyNonce = rs.Started, rs.Nonce
					}
				}
			}
			mu.Lock()
			out = append(out, v)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// finish audits a store operation and refreshes the cached state.
func (s *Service) finish(entry audit.Entry, err error) error {
	if err != nil {
		entry.Decision, entry.Detail = "error", err.Error()
		s.record(entry)
		s.log.Error(entry.Event+" failed", "peer", entry.Peer, "generation", entry.Generation, "err", err)
		return fmt.Errorf("holder %s: %s generation %d: %w", s.id, entry.Event, entry.Generation, err)
	}
	entry.Decision = "ok"
	s.record(entry)
	s.log.Info(entry.Event, "peer", entry.Peer, "generation", entry.Generation, "indices", entry.Indices, "rule", entry.Rule)
	if err := s.refresh(); err != nil {
		return fmt.Errorf("holder %s: after %s: %w", s.id, entry.Event, err)
	}
	return nil
}
