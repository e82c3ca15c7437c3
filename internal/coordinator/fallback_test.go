package coordinator

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/shamir"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// genHolder is a fake holder that holds several generations, the way a
// holder does while a rekey is unsettled: current, staged and previous.
type genHolder struct {
	mu                        sync.Mutex
	current, staged, previous uint64
	gens                      map[uint64]genShares
	commits                   []uint64
	commitErr                 error
	released                  []uint64
}

type genShares struct {
	manifest sharerpc.Manifest
	shares   []sharerpc.Share
}

func (h *genHolder) Manifest(context.Context) (sharerpc.Manifest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.gens[h.current].manifest
	if h.staged != 0 {
		s := h.gens[h.staged].manifest
		m.Staged = &s
	}
	if h.previous != 0 {
		p := h.gens[h.previous].manifest
		m.Previous = &p
	}
	return m, nil
}

func (h *genHolder) Release(_ context.Context, _ string, gen uint64) ([]sharerpc.Share, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen == 0 || (gen != h.current && gen != h.staged && gen != h.previous) {
		return nil, errors.New("generation not held")
	}
	h.released = append(h.released, gen)
	var out []sharerpc.Share
	for _, s := range h.gens[gen].shares {
		out = append(out, sharerpc.Share{Index: s.Index, Value: append([]byte(nil), s.Value...)})
	}
	return out, nil
}

func (h *genHolder) Commit(_ context.Context, gen uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commits = append(h.commits, gen)
	if h.commitErr != nil {
		return h.commitErr
	}
	if gen == h.staged {
		h.previous, h.current, h.staged = h.current, gen, 0
	}
	return nil
}

func (h *genHolder) state() (cur, staged, prev uint64, commits []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current, h.staged, h.previous, append([]uint64(nil), h.commits...)
}

// deal gives the three holders (2/2/1) generation gen of keys.
func deal(hs []*genHolder, gen uint64, keys [][]byte) {
	var all []shares.Share
	for i, k := range keys {
		all = append(all, shares.Share{Index: uint8(i + 1), Value: k})
	}
	m := sharerpc.ManifestFromShares(shares.NewManifest(gen, 3, all))
	for hi, idx := range [][]int{{0, 1}, {2, 3}, {4}} {
		g := genShares{manifest: m}
		for _, i := range idx {
			g.shares = append(g.shares, sharerpc.Share{Index: uint8(i + 1), Value: keys[i]})
		}
		hs[hi].mu.Lock()
		if hs[hi].gens == nil {
			hs[hi].gens = map[uint64]genShares{}
		}
		hs[hi].gens[gen] = g
		hs[hi].mu.Unlock()
	}
}

func foreignKeys(t *testing.T) [][]byte {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	parts, err := shamir.Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// rekeyFake rekeys the rig's fake Vault with verification, the way
// 'unsealer rekey' does, and returns the new keys: from now on Vault takes
// only those.
func rekeyFake(t *testing.T, r *rig) [][]byte {
	t.Helper()
	rk := r.fn.StartRekey(t)
	rk.Verify(t)
	r.fake.Seal()
	return rk.Keys
}

func (r *rig) useGenHolders(hs []*genHolder) {
	r.list.refs = nil
	for i, name := range []string{"a", "b", "c"} {
		r.list.refs = append(r.list.refs, unseal.HolderRef{ID: "spiffe://ks/holder/" + name, Holder: hs[i]})
	}
}

func newGenHolders() []*genHolder { return []*genHolder{{}, {}, {}} }

// TestFallbackToStagedGeneration is the coordinator's half of "a rekey
// must never lose the key": 'unsealer rekey' was killed after Vault's
// verify and before the holders' commit. Vault takes only generation 2,
// which the holders hold staged; generation 1 is still their committed
// one. The node unseals after exactly one refused attempt, and the holders
// are told to commit generation 2. On the code before the fix the node
// never unsealed.
func TestFallbackToStagedGeneration(t *testing.T) {
	r := newRig(t, "127.0.0.81")
	next := rekeyFake(t, r)
	hs := newGenHolders()
	deal(hs, 1, r.raw)
	deal(hs, 2, next)
	for _, h := range hs {
		h.current, h.staged = 1, 2
	}
	hs[2].commitErr = errors.New("denied: write_refused: holder c is down for the test")
	r.useGenHolders(hs)
	var logs proctest.Buffer
	c, stop := r.start(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitUnsealed(t, r.fake, 10*time.Second)
	// The fake unseals on the last share; the coordinator confirms and
	// settles just after.
	proctest.WaitFor(t, 10*time.Second, "the coordinator to settle", func() bool {
		return c.State()["vault-1"].Unseals == 1 && strings.Contains(logs.String(), "not every holder committed")
	})
	stop()
	if w := r.fake.Stats().Wasted; w != 1 {
		t.Fatalf("%d attempts wasted, want exactly 1 (the committed generation, once)", w)
	}
	for i, h := range hs {
		cur, staged, _, commits := h.state()
		if len(commits) != 1 || commits[0] != 2 {
			t.Fatalf("holder %d was asked to commit %v, want [2]", i, commits)
		}
		// Every holder was asked for generation 2 before the unseal, so
		// that each one's proof names it.
		h.mu.Lock()
		rel := slices.Clone(h.released)
		h.mu.Unlock()
		if len(rel) == 0 || rel[len(rel)-1] != 2 {
			t.Fatalf("holder %d released %v, want generation 2 last", i, rel)
		}
		if i < 2 && (cur != 2 || staged != 0) {
			t.Fatalf("holder %d holds current %d staged %d after the settle", i, cur, staged)
		}
	}
	if st := c.State()["vault-1"]; st.Unseals != 1 || st.CannotWhy != "" {
		t.Fatalf("node state %+v", st)
	}
	if out := logs.String(); !strings.Contains(out, "unsealer init --commit 2") {
		t.Fatalf("the holder that refused the commit is not reported with the command that finishes it:\n%s", out)
	}
}

// TestFallbackToPreviousGeneration: the holders committed generation 2,
// which Vault never took (a rekey cancelled after the stage, or a forged
// commit), and keep generation 1. The node unseals with generation 1 after
// exactly one refused attempt; nothing is committed.
func TestFallbackToPreviousGeneration(t *testing.T) {
	r, c, hs := unsealFromTwoGenerations(t, "127.0.0.82", func(h *genHolder) { h.current, h.previous = 2, 1 })
	if w := r.fake.Stats().Wasted; w != 1 {
		t.Fatalf("%d attempts wasted, want exactly 1", w)
	}
	noCommits(t, hs)
	if st := c.State()["vault-1"]; st.Unseals != 1 {
		t.Fatalf("node state %+v", st)
	}
}

// TestFallbackAtMostOneExtraAttempt: when neither the committed nor the
// staged generation opens Vault, the coordinator wastes two attempts (one
// more than before), then backs off and says why.
func TestFallbackAtMostOneExtraAttempt(t *testing.T) {
	r := newRig(t, "127.0.0.83")
	hs := newGenHolders()
	deal(hs, 2, foreignKeys(t))
	deal(hs, 3, foreignKeys(t))
	for _, h := range hs {
		h.current, h.staged = 2, 3
	}
	r.useGenHolders(hs)
	c, stop := r.start(t, Options{})
	deadline := time.Now().Add(5 * time.Second)
	for r.fake.Stats().Wasted < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("both generations were not tried: %+v", r.fake.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Many polls fit in this second; none may try again.
	time.Sleep(time.Second)
	stop()
	if w := r.fake.Stats().Wasted; w != 2 {
		t.Fatalf("%d attempts wasted, want exactly 2 before backing off", w)
	}
	if !r.fake.Sealed() {
		t.Fatal("unsealed with foreign keys?")
	}
	if why := c.State()["vault-1"].CannotWhy; !strings.Contains(why, "both generation 2 (committed) and 3 (staged)") {
		t.Fatalf("state does not explain the refusal: %q", why)
	}
	noCommits(t, hs)
}

// TestNoFallbackWhenCommittedWorks: with a staged generation around (a
// rekey in flight), a node that takes the committed generation costs no
// refused attempt and nothing is committed.
func TestNoFallbackWhenCommittedWorks(t *testing.T) {
	r, _, hs := unsealFromTwoGenerations(t, "127.0.0.84", func(h *genHolder) { h.current, h.staged = 1, 2 })
	noWaste(t, r.fake)
	noCommits(t, hs)
	for i, h := range hs {
		h.mu.Lock()
		rel := h.released
		h.mu.Unlock()
		for _, g := range rel {
			if g != 1 {
				t.Fatalf("holder %d released generation %d", i, g)
			}
		}
	}
}

// unsealFromTwoGenerations runs a coordinator on a fresh rig on ip whose
// holders hold generation 1 (Vault's keys) and generation 2 (foreign
// keys), each in the place set gives it (current, staged or previous),
// until it has unsealed the node and confirmed it; it returns stopped.
func unsealFromTwoGenerations(t *testing.T, ip string, set func(h *genHolder)) (*rig, *Coordinator, []*genHolder) {
	t.Helper()
	r := newRig(t, ip)
	hs := newGenHolders()
	deal(hs, 1, r.raw)
	deal(hs, 2, foreignKeys(t))
	for _, h := range hs {
		set(h)
	}
	r.useGenHolders(hs)
	c, stop := r.start(t, Options{})
	waitUnsealed(t, r.fake, 10*time.Second)
	proctest.WaitFor(t, 10*time.Second, "the coordinator to confirm the unseal", func() bool { return c.State()["vault-1"].Unseals == 1 })
	stop()
	return r, c, hs
}

// noCommits checks that no holder was asked to commit.
func noCommits(t *testing.T, hs []*genHolder) {
	t.Helper()
	for i, h := range hs {
		if _, _, _, commits := h.state(); len(commits) != 0 {
			t.Fatalf("holder %d was asked to commit %v", i, commits)
		}
	}
}
