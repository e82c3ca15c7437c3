package holder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Service is the holder's share service: it answers the gRPC handler calls
// with the sealed store, the release policy and the audit log.
type Service struct {
	id      string
	store   *shares.Store
	engine  atomic.Pointer[policy.Engine]
	audit   *audit.Log
	nodes   map[string]*vaultnode.Node
	timeout time.Duration
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	state    shares.State
	manifest shares.Manifest // of the current generation; zero if none
	indices  []uint8
	staged   *shares.Manifest // of the staged generation, if any
	previous *shares.Manifest // of the previous generation, if kept
	// onChange is called after the store's generation changed (for gossip
	// metadata). It is set while the service already serves, so it is
	// read and written only through the atomic pointer.
	onChange atomic.Pointer[func()]

	// proofs watches the nodes this holder released shares for, to see
	// which generation unseals them (proof.go).
	proofs proofs
	ctx    context.Context
	cancel context.CancelFunc
}

var _ sharerpc.Handler = (*Service)(nil)

// NewService wires a service. It opens the current generation once, to
// check the store and the seal key before serving.
func NewService(id string, store *shares.Store, engine *policy.Engine, log *audit.Log, nodes map[string]*vaultnode.Node,
	timeout time.Duration, m *Metrics, logger *slog.Logger) (*Service, error) {
	s := &Service{id: id, store: store, audit: log, nodes: nodes, timeout: timeout, metrics: m, log: logger, now: time.Now}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.proofs.pending = map[string]uint64{}
	s.proofs.watching = map[string]bool{}
	s.engine.Store(engine)
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the service's background watches and waits for them.
func (s *Service) Close() {
	s.cancel()
	s.proofs.wg.Wait()
}

// SetEngine swaps the policy (on reload).
func (s *Service) SetEngine(e *policy.Engine) { s.engine.Store(e) }

// SetOnChange sets the function called after the store's generation
// changed (for gossip metadata). It must not block. It is safe to call
// while the service serves.
func (s *Service) SetOnChange(f func()) { s.onChange.Store(&f) }

// refresh re-reads the store state and opens the current, staged and
// previous generations to cache their public manifests. The shares are
// zeroed at once.
func (s *Service) refresh() error {
	st, err := s.store.State()
	if err != nil {
		return err
	}
	var m shares.Manifest
	var idx []uint8
	if st.Current != 0 {
		b, err := s.store.Load(st.Current)
		if err != nil {
			return err
		}
		m, idx = b.Manifest, b.Indices()
		b.Destroy()
	}
	other := func(gen uint64) (*shares.Manifest, error) {
		if gen == 0 {
			return nil, nil
		}
		b, err := s.store.Load(gen)
		if err != nil {
			return nil, err
		}
		defer b.Destroy()
		return &b.Manifest, nil
	}
	staged, err := other(st.Staged)
	if err != nil {
		return err
	}
	prev, err := other(st.Previous())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.state, s.manifest, s.indices, s.staged, s.previous = st, m, idx, staged, prev
	s.mu.Unlock()
	s.metrics.generation.Set(float64(st.Current))
	s.metrics.storeShares.Set(float64(len(idx)))
	if f := s.onChange.Load(); f != nil {
		(*f)()
	}
	return nil
}

// Current returns the cached state, manifest and share indices.
func (s *Service) Current() (shares.State, shares.Manifest, []uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.manifest, append([]uint8(nil), s.indices...)
}

// Release serves a coordinator's (or operator's) request for shares.
func (s *Service) Release(ctx context.Context, p sharerpc.Peer, req sharerpc.ReleaseRequest) ([]sharerpc.Share, error) {
	st, _, _ := s.Current()
	held := st.Held()
	e := s.engine.Load()
	entry := audit.Entry{Event: audit.EventRelease, Peer: p.ID.String(), Source: p.Addr.Addr().Unmap().String(),
		Target: req.VaultNode, Generation: req.Generation}
	if req.RekeyNonce != "" {
		entry.Event = audit.EventRekeyRelease
	}
	// Check identity first, so an unauthorized peer cannot make the holder
	// probe Vault; then the holder's own look at the target.
	if _, err := e.Authorize(p.ID.String(), sourceAddr(p.Addr)); err != nil {
		return nil, s.deny(entry, err)
	}
	status := s.checkTarget(ctx, req.VaultNode, req.RekeyNonce != "")
	g, err := e.Decide(policy.Request{PeerID: p.ID.String(), Source: sourceAddr(p.Addr), Target: req.VaultNode,
		Generation: req.Generation, Now: s.now(), Status: status, Held: held, RekeyNonce: req.RekeyNonce})
	if err != nil {
		return nil, s.deny(entry, err)
	}
	b, err := s.store.Load(req.Generation)
	if err != nil {
		entry.Decision, entry.Reason = "error", "store: "+err.Error()
		s.record(entry)
		s.metrics.releases.WithLabelValues("error", "store").Inc()
		return nil, fmt.Errorf("holder %s: failed to open generation %d: %w", s.id, req.Generation, err)
	}
	entry.Decision, entry.Rule, entry.Indices = "allow", g.Rule, b.Indices()
	// The release is audited and fsynced before any share leaves.
	if err := s.audit.Append(entry); err != nil {
		b.Destroy()
		s.metrics.releases.WithLabelValues("error", "audit").Inc()
		s.log.Error("audit log unavailable: not releasing", "err", err)
		return nil, errors.New("holder audit log unavailable: not releasing")
	}
	s.metrics.releases.WithLabelValues("allow", "").Inc()
	if req.RekeyNonce == "" {
		s.released(req.VaultNode, req.Generation)
	}
	s.log.Info("released shares", "peer", entry.Peer, "source", entry.Source, "target", req.VaultNode,
		"generation", req.Generation, "indices", entry.Indices, "rule", g.Rule)
	out := make([]sharerpc.Share, len(b.Shares))
	for i, sh := range b.Shares {
		out[i] = sharerpc.Share{Index: sh.Index, Value: sh.Value}
	}
	return out, nil
}

// checkTarget is the holder's own check of a known target: its seal status
// and, for a rekey release, its rekey status.
func (s *Service) checkTarget(ctx context.Context, name string, rekey bool) policy.TargetStatus {
	n := s.nodes[name]
	if n == nil {
		return policy.TargetStatus{}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := n.SealStatus(ctx)
	if err != nil {
		return policy.TargetStatus{CheckedAt: s.now(), Err: err}
	}
	out := policy.TargetStatus{Initialized: st.Initialized, Sealed: st.Sealed}
	if rekey && st.Initialized && !st.Sealed {
		rs, err := n.RekeyStatus(ctx)
		if err != nil {
			return policy.TargetStatus{CheckedAt: s.now(), Err: err}
		}
		out.RekeyStarted, out.RekeyNonce = rs.Started, rs.Nonce
	}
	out.CheckedAt = s.now()
	return out
}

// deny audits and counts a denial and returns it for the transport to map.
func (s *Service) deny(entry audit.Entry, err error) error {
	d, ok := policy.AsDenial(err)
	if !ok {
		d = policy.Deny(policy.ReasonPeerNotAllowed, "%s", err.Error())
	}
	entry.Decision, entry.Reason, entry.Detail = "deny", string(d.Reason), d.Detail
	// Denials are coalesced per peer in the audit log; the warning is
	// bounded the same way (only denials that got their own line).
	written, err := s.audit.AppendDenial(entry)
	if err != nil {
		s.log.Error("failed to write audit entry", "err", err, "event", entry.Event)
	}
	s.metrics.releases.WithLabelValues("deny", string(d.Reason)).Inc()
	if !written {
		return d
	}
	s.log.Warn("denied", "event", entry.Event, "peer", entry.Peer, "source", entry.Source, "target", entry.Target,
		"generation", entry.Generation, "reason", d.Reason, "detail", d.Detail)
	return d
}

// record appends to the audit log, logging (not returning) a failure:
// used for denials, which must not turn into a different answer.
func (s *Service) record(e audit.Entry) {
	if err := s.audit.Append(e); err != nil {
		s.log.Error("failed to write audit entry", "err", err, "event", e.Event)
	}
}
