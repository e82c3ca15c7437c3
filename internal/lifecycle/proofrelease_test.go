package lifecycle_test

import (
	"context"
	"sync"
	"testing"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// uncheckedFirst is a holder whose first release answers "target
// unchecked" (its own look at Vault failed, as right after a restart), and
// which counts the releases it served.
type uncheckedFirst struct {
	*memHolder
	mu       sync.Mutex
	asked    int
	released int
}

func (h *uncheckedFirst) Release(ctx context.Context, node string, gen uint64) ([]sharerpc.Share, error) {
	h.mu.Lock()
	h.asked++
	first := h.asked == 1
	h.mu.Unlock()
	if first {
		return nil, policy.Deny(policy.ReasonTargetUnchecked, "could not check %s", node)
	}
	ss, err := h.memHolder.Release(ctx, node, gen)
	if err == nil {
		h.mu.Lock()
		h.released++
		h.mu.Unlock()
	}
	return ss, err
}

// TestRecoverUnsealReleasesFromEveryHolder: when --recover unseals a
// sealed node to prove which generation Vault uses, every holder releases
// for that unseal, even one whose first check of Vault failed: a holder
// drops a staged generation only after seeing its own release unseal the
// node. Before, the first threshold sufficed, and a holder left out
// refused the abort (cmd/unsealer TestRekeyKilledProcess flaked so).
func TestRecoverUnsealReleasesFromEveryHolder(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepStage)
	w.restart(t)
	// Holder a (2 shares) answers "unchecked" first; b's two and c's one
	// are a threshold without it.
	a := &uncheckedFirst{memHolder: w.mem[0]}
	hs := append([]lifecycle.HolderRef{{ID: w.mem[0].id, Holder: a}}, w.holders[1:]...)
	rc := lifecycle.RecoverConfig{Node: w.rnode, Holders: hs, Nodes: []lifecycle.Node{w.node}}
	if _, err := lifecycle.RecoverRekey(ctx, rc); err != nil {
		t.Fatalf("recover: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released != 1 || a.asked != 2 {
		t.Fatalf("holder a asked %d times, released %d; want asked again after 'unchecked' and released once", a.asked, a.released)
	}
	w.settled(t, 1)
}
