package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/internal/testkit/fakenode"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// memHolder models a holder's store and the release rules that matter
// here: current or staged generation, and only for a sealed target.
type memHolder struct {
	mu          sync.Mutex
	id          string
	fake        *vaultfake.Vault
	cur, staged uint64
	gens        map[uint64][]shares.Share
	mans        map[uint64]shares.Manifest
	down        bool
	failStage   bool
	// hideStaged makes Manifest leave out, and Release deny, a staged
	// generation as if it were not held: a holder whose staged generation
	// a check cannot see.
	hideStaged bool
}

func newMemHolder(id string, fake *vaultfake.Vault) *memHolder {
	return &memHolder{id: id, fake: fake, gens: map[uint64][]shares.Share{}, mans: map[uint64]shares.Manifest{}}
}

var errDown = errors.New("connection refused")

func (h *memHolder) Manifest(context.Context) (sharerpc.Manifest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return sharerpc.Manifest{}, errDown
	}
	m := sharerpc.ManifestFromShares(h.mans[h.cur])
	m.HolderID = h.id
	if h.staged != 0 && !h.hideStaged {
		// As the holder's share service does: the staged generation's
		// manifest beside the current one.
		st := sharerpc.ManifestFromShares(h.mans[h.staged])
		m.Staged = &st
	}
	return m, nil
}

func (h *memHolder) Release(_ context.Context, node string, gen uint64) ([]sharerpc.Share, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return nil, errDown
	case gen == 0 || gen != h.cur && gen != h.staged || h.hideStaged && gen == h.staged:
		return nil, policy.Deny(policy.ReasonGenerationMismatch, "generation %d asked", gen)
	case !h.fake.Sealed():
		return nil, policy.Deny(policy.ReasonTargetNotSealed, "%s is not sealed", node)
	}
	return h.copyOut(gen), nil
}

// ReleaseForRekey follows the holders' rekey rule: only while the node is
// unsealed and rekeying with this nonce (the operator check is the real
// holder's; see cmd/unsealer tests).
func (h *memHolder) ReleaseForRekey(_ context.Context, node string, gen uint64, nonce string) ([]sharerpc.Share, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return nil, errDown
	case gen == 0 || gen != h.cur:
		return nil, policy.Deny(policy.ReasonGenerationMismatch, "generation %d asked", gen)
	case h.fake.Sealed() || nonce == "" || h.fake.RekeyNonce() != nonce:
		return nil, policy.Deny(policy.ReasonTargetNotRekeying, "%s is not rekeying with nonce %q", node, nonce)
	}
	return h.copyOut(gen), nil
}

// copyOut copies generation gen's shares, as a release over the wire does.
func (h *memHolder) copyOut(gen uint64) []sharerpc.Share {
	var out []sharerpc.Share
	for _, s := range h.gens[gen] {
		out = append(out, sharerpc.Share{Index: s.Index, Value: append([]byte(nil), s.Value...)})
	}
	return out
}

func (h *memHolder) Stage(_ context.Context, req sharerpc.StageRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return errDown
	case h.failStage:
		return errors.New("disk full")
	case req.Generation <= h.cur:
		return fmt.Errorf("cannot stage generation %d, current is %d", req.Generation, h.cur)
	}
	var ss []shares.Share
	for _, s := range req.Shares {
		ss = append(ss, shares.Share{Index: s.Index, Value: append([]byte(nil), s.Value...)})
	}
	if h.staged != 0 && h.staged != req.Generation {
		delete(h.gens, h.staged)
	}
	h.gens[req.Generation], h.mans[req.Generation], h.staged = ss, req.Manifest.Shares(), req.Generation
	return nil
}

// Commit makes the staged generation gen current; committing it again is
// a no-op.
func (h *memHolder) Commit(_ context.Context, gen uint64) error {
	return h.settle("commit", gen, func() bool { return gen == h.cur && h.staged == 0 }, func() {
		delete(h.gens, h.cur)
		h.cur, h.staged = gen, 0
	})
}

// Abort drops the staged generation gen; with nothing staged it is a no-op.
func (h *memHolder) Abort(_ context.Context, gen uint64) error {
	return h.settle("abort", gen, func() bool { return h.staged == 0 }, func() {
		delete(h.gens, h.staged)
		h.staged = 0
	})
}

// settle is Commit's and Abort's rule: under the lock, nothing to do when
// done holds, refused when gen is not the staged generation, else apply.
func (h *memHolder) settle(verb string, gen uint64, done func() bool, apply func()) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return errDown
	case done():
		return nil
	case gen != h.staged:
		return fmt.Errorf("cannot %s generation %d, staged is %d", verb, gen, h.staged)
	}
	apply()
	return nil
}

// set changes the holder under its lock: a collection may still have a
// call to it in flight (the pipeline returns at a threshold).
func (h *memHolder) set(f func(h *memHolder)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *memHolder) state() (cur, staged uint64, idx []uint8) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.gens[h.cur] {
		idx = append(idx, s.Index)
	}
	return h.cur, h.staged, idx
}

// world is one fake Vault node and three in-memory holders dealt 2/2/1.
type world struct {
	fake    *vaultfake.Vault
	vault   *vaultnode.Node
	node    lifecycle.Node      // to unseal
	inode   lifecycle.InitNode  // to initialize
	rnode   lifecycle.RekeyNode // to rekey through
	mem     []*memHolder
	holders []lifecycle.HolderRef
	plan    shares.Plan
	keys    []shares.Share // the generation-1 shares, when made by vaultfake.New
}

var ids = [3]string{"spiffe://keyshare.test/holder/a", "spiffe://keyshare.test/holder/b", "spiffe://keyshare.test/holder/c"}

// newWorld makes an uninitialized fake, or (initialized) an initialized
// one whose generation 1 is dealt to the holders.
func newWorld(t *testing.T, initialized bool) *world {
	t.Helper()
	fn := fakenode.Start(t, "127.0.0.150", fakenode.Options{Uninitialized: !initialized})
	n := fn.Vault
	w := &world{plan: shares.DefaultPlan(ids), fake: fn.Fake, vault: n, keys: fn.Shares(),
		node: lifecycle.Node{Name: "vault-1", Vault: n}, inode: lifecycle.InitNode{Name: "vault-1", Vault: n},
		rnode: lifecycle.RekeyNode{Name: "vault-1", Vault: n}}
	m := shares.NewManifest(1, 3, w.keys)
	idx := w.plan.Indices()
	for _, id := range ids {
		h := newMemHolder(id, w.fake)
		if initialized {
			h.cur, h.mans[1] = 1, m
			for _, i := range idx[id] {
				h.gens[1] = append(h.gens[1], w.keys[i-1].Clone())
			}
		}
		w.mem = append(w.mem, h)
		w.holders = append(w.holders, lifecycle.HolderRef{ID: id, Holder: h})
	}
	return w
}

// restart stops and starts the fake: it comes back sealed, and a rekey in
// progress is gone, as with Vault.
func (w *world) restart(t *testing.T) {
	t.Helper()
	w.fake.Stop()
	if err := w.fake.Start(); err != nil {
		t.Fatal(err)
	}
	// The client's kept-alive connection was cut: poll until it answers.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := w.node.Vault.SealStatus(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake vault did not come back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unsealedWorld is an initialized world (newWorld) whose node is unsealed,
// and a context for the test's calls, cancelled when the test ends.
func unsealedWorld(t *testing.T) (*world, context.Context) {
	t.Helper()
	w := newWorld(t, true)
	w.fake.Unseal()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return w, ctx
}

// killedAt is an unsealedWorld whose rekey was killed right after step,
// with no clean-up, as a killed process leaves it.
func killedAt(t *testing.T, step lifecycle.Step) (*world, context.Context) {
	t.Helper()
	w, ctx := unsealedWorld(t)
	if _, err := w.rekey(ctx, step); !errors.Is(err, errKilled) {
		t.Fatalf("rekey killed after %s: %v", step, err)
	}
	return w, ctx
}
