package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/metrictest"

	"github.com/keyshare/keyshare/internal/testkit/fakenode"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// fakeHolder serves a fixed set of shares, and can be down, slow or corrupt.
type fakeHolder struct {
	mu       sync.Mutex
	manifest sharerpc.Manifest
	shares   []sharerpc.Share
	down     bool
	corrupt  bool
	delay    time.Duration
	releases int
}

func (h *fakeHolder) Manifest(ctx context.Context) (sharerpc.Manifest, error) {
	h.mu.Lock()
	down, delay := h.down, h.delay
	h.mu.Unlock()
	if down {
		return sharerpc.Manifest{}, errors.New("connection refused")
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return sharerpc.Manifest{}, ctx.Err()
	}
	return h.manifest, nil
}

func (h *fakeHolder) Release(ctx context.Context, _ string, gen uint64) ([]sharerpc.Share, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return nil, errors.New("connection refused")
	}
	h.releases++
	out := make([]sharerpc.Share, len(h.shares))
	for i, s := range h.shares {
		out[i] = sharerpc.Share{Index: s.Index, Value: append([]byte(nil), s.Value...)}
		if h.corrupt {
			out[i].Value[0] ^= 0xff
		}
	}
	return out, nil
}

func (h *fakeHolder) set(f func(*fakeHolder)) { h.mu.Lock(); f(h); h.mu.Unlock() }

type holderList struct{ refs []unseal.HolderRef }

func (l holderList) Refs() []unseal.HolderRef { return l.refs }
func (l holderList) Total() int               { return len(l.refs) }

// Commit commits on the first ref of holder id, if its fake can commit.
func (l holderList) Commit(ctx context.Context, id string, gen uint64) error {
	for _, ref := range l.refs {
		if ref.ID != id {
			continue
		}
		if cm, ok := ref.Holder.(interface {
			Commit(context.Context, uint64) error
		}); ok {
			return cm.Commit(ctx, gen)
		}
		return errors.New("this fake cannot commit")
	}
	return errors.New("holder " + id + " is not configured")
}

type rig struct {
	fake    *vaultfake.Vault
	caPEM   []byte
	node    *vaultnode.Node
	holders map[string]*fakeHolder
	list    holderList
	raw     [][]byte
	fn      *fakenode.Node // the fake and its client, for a rekey
}

func newRig(t *testing.T, ip string) *rig {
	t.Helper()
	n := fakenode.Start(t, ip, fakenode.Options{Timeout: 2 * time.Second})
	fake, raw, all := n.Fake, n.Raw, n.Shares()
	m := sharerpc.ManifestFromShares(shares.NewManifest(1, 3, all))
	r := &rig{fake: fake, caPEM: n.CA.CertPEM, node: n.Vault, holders: map[string]*fakeHolder{}, raw: raw, fn: n}
	for name, idx := range map[string][]int{"a": {0, 1}, "b": {2, 3}, "c": {4}} {
		h := &fakeHolder{manifest: m}
		for _, i := range idx {
			h.shares = append(h.shares, sharerpc.Share{Index: uint8(i + 1), Value: raw[i]})
		}
		r.holders[name] = h
	}
	for _, name := range []string{"a", "b", "c"} {
		r.list.refs = append(r.list.refs, unseal.HolderRef{ID: "spiffe://ks/holder/" + name, Holder: r.holders[name]})
	}
	return r
}

func (r *rig) start(t *testing.T, o Options) (*Coordinator, func()) {
	t.Helper()
	if o.PollInterval == 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.SafetyNetInterval == 0 {
		// Operator seals end no connection: the tests that seal the
		// fake see them at the poll interval.
		o.SafetyNetInterval = o.PollInterval
	}
	o.DownInterval = 20 * time.Millisecond
	o.RetryAfter = 50 * time.Millisecond
	if o.StaleProgressAfter == 0 {
		o.StaleProgressAfter = time.Minute
	}
	c, err := New([]Node{{Name: "vault-1", Vault: r.node}}, r.list, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func waitUnsealed(t *testing.T, f *vaultfake.Vault, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for f.Sealed() {
		if time.Now().After(deadline) {
			t.Fatalf("still sealed after %s: %+v", bound, f.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unsealsCleanly waits up to 10s for the node to unseal, then checks
// noWaste.
func unsealsCleanly(t *testing.T, f *vaultfake.Vault) {
	t.Helper()
	waitUnsealed(t, f, 10*time.Second)
	noWaste(t, f)
}

// noWaste is the invariant of every test: no attempt ever reached the
// threshold with a wrong share.
func noWaste(t *testing.T, f *vaultfake.Vault) {
	t.Helper()
	if w := f.Stats().Wasted; w != 0 {
		t.Fatalf("%d unseal attempts wasted", w)
	}
}

func TestUnsealWithTwoOfThreeHolders(t *testing.T) {
	for _, down := range []string{"a", "b", "c"} {
		t.Run("ok/"+down+"-down", func(t *testing.T) {
			r := newRig(t, "127.0.0.71")
			r.holders[down].set(func(h *fakeHolder) { h.down = true })
			r.start(t, Options{})
			unsealsCleanly(t, r.fake)
			if s := r.fake.Stats().Submitted; s != 3 {
				t.Fatalf("submitted %d shares, want exactly the threshold 3", s)
			}
		})
	}
}

func TestNoSubmissionWithOnlyHolderC(t *testing.T) {
	r := newRig(t, "127.0.0.72")
	r.holders["a"].set(func(h *fakeHolder) { h.down = true })
	r.holders["b"].set(func(h *fakeHolder) { h.down = true })
	c, stop := r.start(t, Options{})
	proctest.WaitFor(t, 5*time.Second, "the coordinator to report why it cannot unseal", func() bool { return c.State()["vault-1"].CannotWhy != "" })
	stop()
	if s := r.fake.Stats().Submitted; s != 0 {
		t.Fatalf("submitted %d shares with one holder alive", s)
	}
	if p, _ := r.fake.Progress(); p != 0 || !r.fake.Sealed() {
		t.Fatal("node progressed")
	}
	if r.holders["c"].releases != 0 {
		t.Fatal("holder C was asked to release without a majority manifest")
	}
}

func TestCorruptShareCaught(t *testing.T) {
	r := newRig(t, "127.0.0.73")
	r.holders["a"].set(func(h *fakeHolder) { h.corrupt = true })
	// A and B agree first; A's shares fail, B's two are not enough, so C,
	// whose manifest arrives late, is asked too.
	r.holders["c"].set(func(h *fakeHolder) { h.delay = 300 * time.Millisecond })
	m := NewMetrics()
	r.start(t, Options{Metrics: m})
	unsealsCleanly(t, r.fake)
	if got := metrictest.Value(t, m.badShares.WithLabelValues("spiffe://ks/holder/a")); got < 2 {
		t.Fatalf("bad shares from holder a counted %v, want 2 or more", got)
	}
}

func TestForeignStaleProgressReset(t *testing.T) {
	r := newRig(t, "127.0.0.74")
	// Someone typed one wrong share and walked away.
	junk := make([]byte, shares.ShareLen)
	junk[shares.ShareLen-1] = 0x42
	if _, err := r.node.Unseal(context.Background(), junk); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.start(t, Options{StaleProgressAfter: 400 * time.Millisecond})
	waitUnsealed(t, r.fake, 10*time.Second)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("foreign progress reset after %s, before the stale bound", took)
	}
	noWaste(t, r.fake)
	if r.fake.Stats().Resets != 1 {
		t.Fatalf("resets = %d, want 1", r.fake.Stats().Resets)
	}
}

func TestTwoCoordinatorsAtOnce(t *testing.T) {
	r := newRig(t, "127.0.0.75")
	r.start(t, Options{PollInterval: 20 * time.Millisecond})
	r.start(t, Options{PollInterval: 20 * time.Millisecond})
	for range 5 {
		waitUnsealed(t, r.fake, 10*time.Second)
		r.fake.Seal()
	}
	unsealsCleanly(t, r.fake)
}

func TestFlappingNode(t *testing.T) {
	r := newRig(t, "127.0.0.76")
	r.start(t, Options{PollInterval: 20 * time.Millisecond})
	for i := range 6 {
		waitUnsealed(t, r.fake, 10*time.Second)
		if i%2 == 0 {
			r.fake.Seal()
			continue
		}
		// A restart: the node goes away and comes back sealed.
		r.fake.Stop()
		if err := r.fake.Start(); err != nil {
			t.Fatal(err)
		}
	}
	unsealsCleanly(t, r.fake)
	if u := r.fake.Stats().Unseals; u != 7 {
		t.Fatalf("unseals = %d, want 7", u)
	}
}

func TestUninitializedNodeLeftAlone(t *testing.T) {
	r := newRig(t, "127.0.0.77")
	r.fake.SetInitialized(false)
	n := &countingNotifier{}
	_, stop := r.start(t, Options{Notifier: n})
	proctest.WaitFor(t, 5*time.Second, "the uninitialized node to be reported", func() bool { return n.count(EventNotInitialized) != 0 })
	stop()
	if s := r.fake.Stats().Submitted; s != 0 {
		t.Fatalf("submitted %d shares to an uninitialized node", s)
	}
}

type countingNotifier struct {
	mu     sync.Mutex
	events []Event
}

func (n *countingNotifier) Notify(e Event) {
	n.mu.Lock()
	n.events = append(n.events, e)
	n.mu.Unlock()
}
func (n *countingNotifier) count(kind string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, e := range n.events {
		if e.Kind == kind {
			c++
		}
	}
	return c
}

// TestRejectedGenerationBacksOff: when the holders agree on a generation
// that does not open this Vault (an unfinished rekey), Vault refuses the
// full threshold once, and the coordinator backs off instead of wasting an
// attempt per poll.
func TestRejectedGenerationBacksOff(t *testing.T) {
	r := newRig(t, "127.0.0.78")
	other := newRig(t, "127.0.0.79") // another key's shares and manifest
	r.list = other.list
	n := &countingNotifier{}
	c, stop := r.start(t, Options{Notifier: n})
	proctest.WaitFor(t, 5*time.Second, "the foreign generation to be tried", func() bool { return r.fake.Stats().Wasted != 0 })
	// Many polls fit in this second; none may try again.
	time.Sleep(time.Second)
	stop()
	if w := r.fake.Stats().Wasted; w != 1 {
		t.Fatalf("%d attempts wasted, want exactly 1 before backing off", w)
	}
	if why := c.State()["vault-1"].CannotWhy; !strings.Contains(why, "rekey --recover") {
		t.Fatalf("state does not explain the refusal: %q", why)
	}
	if n.count(EventCannotUnseal) == 0 {
		t.Fatal("no cannot_unseal event")
	}
}

// TestRestartNoticedAtOnce: with a long poll interval, a restarted node is
// still unsealed within moments, because the watcher's held connection to
// it ends when it stops.
func TestRestartNoticedAtOnce(t *testing.T) {
	r := newRig(t, "127.0.0.80")
	var _ CloseWatcher = r.node
	// The coordinator's log goes to the test's, shown if it fails.
	r.start(t, Options{PollInterval: time.Minute, Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	waitUnsealed(t, r.fake, 10*time.Second)
	// Wait for both kept-alive connections: the poller's and the close
	// watcher's.
	deadline := time.Now().Add(10 * time.Second)
	for r.fake.IdleConns() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections to the node, want the poller's and the watcher's", r.fake.IdleConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Log("restarting the node:", r.fake.Stats())
	r.fake.Stop()
	if err := r.fake.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUnsealed(t, r.fake, 5*time.Second)
	t.Logf("restarted node unsealed %s after it came back", time.Since(start).Round(time.Millisecond))
	noWaste(t, r.fake)
}

// tWriter writes a logger's lines to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
