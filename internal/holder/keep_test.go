package holder_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/testkit/fakenode"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// asPeer calls a holder Service as one verified peer, without the
// transport: what the share service's handler would do after mTLS.
type asPeer struct {
	svc  *holder.Service
	peer sharerpc.Peer
}

func (a asPeer) Manifest(ctx context.Context) (sharerpc.Manifest, error) {
	return a.svc.Manifest(ctx, a.peer)
}

func (a asPeer) Release(ctx context.Context, node string, gen uint64) ([]sharerpc.Share, error) {
	ss, err := a.svc.Release(ctx, a.peer, sharerpc.ReleaseRequest{VaultNode: node, Generation: gen})
	// The transport copies what it sends; so does this stand-in.
	out := make([]sharerpc.Share, len(ss))
	for i, s := range ss {
		out[i] = sharerpc.Share{Index: s.Index, Value: append([]byte(nil), s.Value...)}
	}
	return out, err
}

func (a asPeer) Commit(ctx context.Context, gen uint64) error { return a.svc.Commit(ctx, a.peer, gen) }

type holderList []unseal.HolderRef

func (l holderList) Refs() []unseal.HolderRef { return l }
func (l holderList) Total() int               { return len(l) }
func (l holderList) Commit(ctx context.Context, id string, gen uint64) error {
	for _, r := range l {
		if r.ID == id {
			return r.Holder.(asPeer).Commit(ctx, gen)
		}
	}
	return fmt.Errorf("holder %s is not configured", id)
}

type world struct {
	fake  *vaultfake.Vault
	node  *vaultnode.Node
	svcs  []*holder.Service
	store []*shares.Store
	refs  holderList
	fn    *fakenode.Node // the fake and its client, for a rekey
}

var (
	unsealerPeer = sharerpc.Peer{ID: spiffeid.RequireFromString("spiffe://ks.test/unsealer/u1"), Role: "unsealer",
		Addr: netip.MustParseAddrPort("127.0.0.20:40000")}
	allot = [][]uint8{{1, 2}, {3, 4}, {5}}
)

// newWorld is a fake Vault on ip and three holder Services (2/2/1 shares of
// generation 1) with real sealed stores, policy and audit logs.
func newWorld(t *testing.T, ip string) *world {
	t.Helper()
	n := fakenode.Start(t, ip, fakenode.Options{Timeout: 5 * time.Second})
	node := n.Vault
	w := &world{fake: n.Fake, node: node, fn: n}
	all := n.Shares()
	for i, idx := range allot {
		id := "spiffe://ks.test/holder/" + string(rune('a'+i))
		dir := t.TempDir()
		key, err := shares.KeyFromBytes(make([]byte, shares.KeyLen))
		if err != nil {
			t.Fatal(err)
		}
		st, err := shares.OpenStore(filepath.Join(dir, "store"), id, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Stage(bundle(id, 1, all, idx)); err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(1); err != nil {
			t.Fatal(err)
		}
		engine, err := policy.New(policy.TrustDomain("ks.test"), policy.AllowRole(identity.RoleUnsealer, "127.0.0.20/32"), policy.KnownTargets("vault-1"))
		if err != nil {
			t.Fatal(err)
		}
		alog, err := audit.Open(filepath.Join(dir, "audit.log"), bytes.Repeat([]byte{7}, audit.KeyLen))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { alog.Close() })
		svc, err := holder.NewService(id, st, engine, alog, map[string]*vaultnode.Node{"vault-1": node}, 5*time.Second,
			holder.NewMetrics(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		w.svcs, w.store = append(w.svcs, svc), append(w.store, st)
		w.refs = append(w.refs, unseal.HolderRef{ID: id, Holder: asPeer{svc: svc, peer: unsealerPeer}})
	}
	return w
}

func toShares(raw [][]byte) []shares.Share {
	out := make([]shares.Share, len(raw))
	for i, r := range raw {
		out[i] = shares.Share{Index: uint8(i + 1), Value: r}
	}
	return out
}

func bundle(id string, gen uint64, all []shares.Share, idx []uint8) *shares.Bundle {
	b := &shares.Bundle{HolderID: id, Generation: gen, Manifest: shares.NewManifest(gen, 3, all)}
	for _, i := range idx {
		b.Shares = append(b.Shares, all[i-1].Clone())
	}
	return b
}

// rekeyUntilVerified runs 'unsealer rekey' on the fake up to and including
// Vault's verify, and is killed before the holders' commit: Vault takes
// only generation 2, which the holders hold staged.
func (w *world) rekeyUntilVerified(t *testing.T) {
	t.Helper()
	rk := w.fn.StartRekey(t)
	keys := rk.Keys
	next := toShares(keys)
	m := sharerpc.ManifestFromShares(shares.NewManifest(2, 3, next))
	for i, svc := range w.svcs {
		req := sharerpc.StageRequest{Generation: 2, Manifest: m, RekeyNonce: rk.Nonce}
		for _, idx := range allot[i] {
			req.Shares = append(req.Shares, sharerpc.Share{Index: idx, Value: append([]byte(nil), keys[idx-1]...)})
		}
		if err := svc.Stage(context.Background(), unsealerPeer, req); err != nil {
			t.Fatalf("stage on holder %d: %v", i, err)
		}
	}
	rk.Verify(t)
}

func (w *world) runCoordinator(t *testing.T) (*coordinator.Coordinator, func()) {
	t.Helper()
	c, err := coordinator.New([]coordinator.Node{{Name: "vault-1", Vault: w.node}}, w.refs,
		coordinator.Options{PollInterval: 50 * time.Millisecond, RetryAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.Run(ctx) }()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return c, stop
}

// TestRekeyKilledBeforeCommitSettles is the rule "keep N until N+1 has
// unsealed" end to end, with real holder Services and stores and the
// coordinator: 'unsealer rekey' killed between Vault's verify and the
// holders' commit, then a restart. The node unseals after one refused
// attempt with generation 1; each holder, having released generation 2
// last (the coordinator asks them all for its second attempt), sees the
// node unsealed and records generation 2 as proven, commits it when the
// coordinator asks, and keeps generation 1.
func TestRekeyKilledBeforeCommitSettles(t *testing.T) {
	w := newWorld(t, "127.0.0.91")
	w.rekeyUntilVerified(t)
	w.fake.Seal()
	c, stop := w.runCoordinator(t)
	proctest.WaitFor(t, 20*time.Second, "every holder to commit generation 2", func() bool {
		for _, st := range w.store {
			s, err := st.State()
			if err != nil || s.Current != 2 {
				return false
			}
		}
		return true
	})
	stop()
	if w.fake.Sealed() || c.State()["vault-1"].Unseals != 1 {
		t.Fatalf("node sealed=%t, state %+v", w.fake.Sealed(), c.State()["vault-1"])
	}
	if n := w.fake.Stats().Wasted; n != 1 {
		t.Fatalf("%d attempts wasted, want exactly 1", n)
	}
	// Each holder's proof lands within its next look at the node.
	// On a timeout the failure names each holder's proof state: a holder
	// whose release of generation 2 never reached it (its call timed out)
	// proves generation 1, the documented limit of proofs (proof.go).
	proctest.WaitForErr(t, 20*time.Second, "every holder to record generation 2 as proven", func() error {
		for i, st := range w.store {
			s, err := st.State()
			if err != nil || s.Proven != 2 {
				return fmt.Errorf("holder %d: proven %d, last proof %d, current %d (%v)", i, s.Proven, s.LastProof, s.Current, err)
			}
			if m, err := w.svcs[i].Manifest(context.Background(), unsealerPeer); err != nil || m.Proven != 2 {
				return fmt.Errorf("holder %d: manifest says proven %d (%v)", i, m.Proven, err)
			}
		}
		return nil
	})
	proven2 := 0
	for i, st := range w.store {
		s, err := st.State()
		if err != nil {
			t.Fatal(err)
		}
		if s.Current != 2 || s.Staged != 0 || !slices.Equal(s.Kept, []uint64{1}) {
			t.Fatalf("holder %d: state %+v, want current 2, kept [1]", i, s)
		}
		// The coordinator asked every holder for generation 2 in its
		// second attempt, so each one's last release before the unseal
		// was generation 2, and each one's proof is right.
		if s.Proven == 2 && s.LastProof == 2 {
			proven2++
		}
		m, err := w.svcs[i].Manifest(context.Background(), unsealerPeer)
		if err != nil || m.Generation != 2 || m.Previous == nil || m.Previous.Generation != 1 || m.Proven != s.Proven {
			t.Fatalf("holder %d: manifest %+v, %v", i, m, err)
		}
	}
	if proven2 != 3 {
		t.Fatalf("%d holders recorded generation 2 as proven, want all 3", proven2)
	}
}
