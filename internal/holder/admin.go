package holder

import (
	"context"
	"fmt"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Manifest returns the public manifest of the current generation, or a
// zero-generation manifest when the holder holds none yet.
func (s *Service) Manifest(_ context.Context, _ sharerpc.Peer) (sharerpc.Manifest, error) {
	_, m, _ := s.Current()
	out := sharerpc.ManifestFromShares(m)
	out.HolderID = s.id
	return out, nil
}

// Stage stores a new generation (init and rekey, first phase).
func (s *Service) Stage(_ context.Context, p sharerpc.Peer, req sharerpc.StageRequest) error {
	entry := audit.Entry{Event: audit.EventStage, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: req.Generation}
	if _, err := s.engine.Load().Authorize(p.ID.String(), sourceAddr(p.Addr)); err != nil {
		return s.deny(entry, err)
	}
	b := &shares.Bundle{HolderID: s.id, Generation: req.Generation, Manifest: req.Manifest.Shares()}
	for _, sh := range req.Shares {
		b.Shares = append(b.Shares, shares.Share{Index: sh.Index, Value: sh.Value})
	}
	defer b.Destroy()
	entry.Indices = b.Indices()
	err := s.store.Stage(b)
	return s.finish(entry, err)
}

// Commit makes the staged generation current (second phase).
func (s *Service) Commit(_ context.Context, p sharerpc.Peer, generation uint64) error {
	entry := audit.Entry{Event: audit.EventCommit, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: generation}
	if _, err := s.engine.Load().Authorize(p.ID.String(), sourceAddr(p.Addr)); err != nil {
		return s.deny(entry, err)
	}
	return s.finish(entry, s.store.Commit(generation))
}

// Abort drops the staged generation.
func (s *Service) Abort(_ context.Context, p sharerpc.Peer, generation uint64) error {
	entry := audit.Entry{Event: audit.EventAbort, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(), Generation: generation}
	if _, err := s.engine.Load().Authorize(p.ID.String(), sourceAddr(p.Addr)); err != nil {
		return s.deny(entry, err)
	}
	return s.finish(entry, s.store.Abort(generation))
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
	s.log.Info(entry.Event, "peer", entry.Peer, "generation", entry.Generation, "indices", entry.Indices)
	if err := s.refresh(); err != nil {
		return fmt.Errorf("holder %s: after %s: %w", s.id, entry.Event, err)
	}
	return nil
}
