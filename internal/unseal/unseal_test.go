package unseal

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// keys makes n random 33-byte shares of generation gen and their manifest.
func keys(t *testing.T, gen uint64, n, threshold int) ([]shares.Share, shares.Manifest) {
	t.Helper()
	var all []shares.Share
	for i := range n {
		v := make([]byte, shares.ShareLen)
		if _, err := rand.Read(v); err != nil {
			t.Fatal(err)
		}
		all = append(all, shares.Share{Index: uint8(i + 1), Value: v})
	}
	return all, shares.NewManifest(gen, threshold, all)
}

func TestTally(t *testing.T) {
	_, m1 := keys(t, 1, 5, 3)
	_, m2 := keys(t, 2, 5, 3)
	type vote struct {
		id string
		m  shares.Manifest
	}
	type tc struct {
		total   int
		votes   []vote
		want    uint64 // majority generation, 0 for none
		leading uint64
	}
	run := func(t *testing.T, c tc) {
		tl := NewTally(c.total)
		for _, v := range c.votes {
			tl.Add(v.id, v.m)
		}
		m, _, ok := tl.Majority()
		if (c.want != 0) != ok || m.Generation != c.want {
			t.Fatalf("majority generation %d (ok %v), want %d", m.Generation, ok, c.want)
		}
		if l, _ := tl.Leading(); l.Generation != c.leading {
			t.Fatalf("leading generation %d, want %d", l.Generation, c.leading)
		}
	}
	for name, c := range map[string]tc{
		"ok/two-of-three":          {3, []vote{{"a", m1}, {"b", m1}}, 1, 1},
		"ok/two-of-three-split":    {3, []vote{{"a", m2}, {"b", m1}, {"c", m1}}, 1, 1},
		"ok/three-of-four":         {4, []vote{{"a", m1}, {"b", m1}, {"c", m1}}, 1, 1},
		"fail/one-of-three":        {3, []vote{{"a", m1}}, 0, 1},
		"fail/two-of-four":         {4, []vote{{"a", m1}, {"b", m1}, {"c", m2}, {"d", m2}}, 0, 1},
		"fail/same-holder-twice":   {3, []vote{{"a", m1}, {"a", m1}}, 0, 1},
		"fail/zero-generation":     {3, []vote{{"a", shares.Manifest{}}, {"b", shares.Manifest{}}}, 0, 0},
		"fail/malformed":           {3, []vote{{"a", shares.Manifest{Generation: 1, Threshold: 9}}, {"b", shares.Manifest{Generation: 1, Threshold: 9}}}, 0, 0},
		"fail/first-answer-counts": {3, []vote{{"a", m2}, {"a", m1}, {"b", m1}}, 0, 1},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

// fakeHolder holds fixed shares of one manifest; it can fail, stall its
// Release until the call ends, or answer its manifest late.
type fakeHolder struct {
	manifest sharerpc.Manifest
	shares   []shares.Share
	down     bool
	stall    bool
	late     time.Duration
	corrupt  bool
	// refuseAfter, if set, makes Release refuse after that long, whether
	// or not the call was cancelled meanwhile (the answer was on its way).
	refuseAfter time.Duration

	mu       sync.Mutex
	releases int
}

func (h *fakeHolder) Manifest(ctx context.Context) (sharerpc.Manifest, error) {
	if h.down {
		return sharerpc.Manifest{}, errors.New("connection refused")
	}
	select {
	case <-time.After(h.late):
		return h.manifest, nil
	case <-ctx.Done():
		return sharerpc.Manifest{}, ctx.Err()
	}
}

func (h *fakeHolder) Release(ctx context.Context, _ string, _ uint64) ([]sharerpc.Share, error) {
	h.mu.Lock()
	h.releases++
	h.mu.Unlock()
	if h.down {
		return nil, errors.New("connection refused")
	}
	if h.refuseAfter > 0 {
		time.Sleep(h.refuseAfter)
		return nil, errors.New("sealed file failed authentication (tampered or corrupt)")
	}
	if h.stall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var out []sharerpc.Share
	for _, s := range h.shares {
		v := append([]byte(nil), s.Value...)
		if h.corrupt {
			v[0] ^= 0xff
		}
		out = append(out, sharerpc.Share{Index: s.Index, Value: v})
	}
	return out, nil
}

func (h *fakeHolder) asked() int { h.mu.Lock(); defer h.mu.Unlock(); return h.releases }

// deal makes holders a, b, c with 2/2/1 shares of one generation.
func deal(t *testing.T) ([]*fakeHolder, []HolderRef, shares.Manifest) {
	all, m := keys(t, 1, 5, 3)
	wm := sharerpc.ManifestFromShares(m)
	hs := []*fakeHolder{{manifest: wm, shares: all[0:2]}, {manifest: wm, shares: all[2:4]}, {manifest: wm, shares: all[4:5]}}
	var refs []HolderRef
	for i, id := range []string{"a", "b", "c"} {
		refs = append(refs, HolderRef{ID: id, Holder: hs[i]})
	}
	return hs, refs, m
}

func TestCollect(t *testing.T) {
	type tc struct {
		tune    func(hs []*fakeHolder, refs []HolderRef) []HolderRef
		opts    Options
		err     error
		reached int // verified shares in hand, at least
	}
	run := func(t *testing.T, c tc) {
		hs, refs, m := deal(t)
		if c.tune != nil {
			refs = c.tune(hs, refs)
		}
		if c.opts.Timeout == 0 {
			c.opts.Timeout = 2 * time.Second
		}
		start := time.Now()
		res, err := Collect(context.Background(), refs, 3, "vault-1", c.opts)
		defer res.Zero()
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Fatalf("err = %v, want %v", err, c.err)
		}
		if took := time.Since(start); took > c.opts.Timeout+time.Second {
			t.Fatalf("took %s, more than one call's timeout", took)
		}
		if err != nil {
			if len(res.Shares) != 0 {
				t.Fatal("shares returned with an error")
			}
			return
		}
		if len(res.Shares) < c.reached || res.Reachable != len(res.Shares) {
			t.Fatalf("%d shares (%d reachable), want %d or more", len(res.Shares), res.Reachable, c.reached)
		}
		for _, s := range res.Shares {
			if m.Verify(s) != nil {
				t.Fatalf("share %d does not verify", s.Index)
			}
		}
	}
	for name, c := range map[string]tc{
		"ok/all-up": {reached: 3},
		"ok/every":  {opts: Options{Every: true}, reached: 5},
		"ok/a-stalls-release": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[0].stall, hs[2].late = true, 100*time.Millisecond
			return refs
		}, reached: 3},
		"ok/a-down": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[0].down = true
			return refs
		}, reached: 3},
		"ok/a-corrupt-c-late": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[0].corrupt, hs[2].late = true, 100*time.Millisecond
			return refs
		}, reached: 3},
		"ok/extra-address-after-configured-fails": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			// a is down and b's configured address stalls its release;
			// gossip gave another address of b, which works.
			other := &fakeHolder{manifest: hs[1].manifest, shares: hs[1].shares}
			hs[0].down, hs[1].stall = true, true
			return append(refs, HolderRef{ID: "b", Holder: other})
		}, opts: Options{Timeout: 300 * time.Millisecond}, reached: 3},
		"fail/only-c": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[0].down, hs[1].down = true, true
			return refs
		}, err: ErrNoQuorum},
		"fail/one-holder-two-addresses-is-no-majority": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[1].down, hs[2].down = true, true
			return append(refs, HolderRef{ID: "a", Holder: hs[0]})
		}, err: ErrNoQuorum},
		"fail/a-and-b-stall": {tune: func(hs []*fakeHolder, refs []HolderRef) []HolderRef {
			hs[0].stall, hs[1].stall = true, true
			return refs
		}, opts: Options{Timeout: 300 * time.Millisecond}, err: ErrTooFewShares},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

// TestCollectAsksLateHolderAtOnce: a holder whose matching manifest comes
// after the majority is asked for its shares as soon as it arrives, while
// another holder's release still stalls.
func TestCollectAsksLateHolderAtOnce(t *testing.T) {
	hs, refs, _ := deal(t)
	hs[0].stall, hs[2].late = true, 100*time.Millisecond
	start := time.Now()
	res, err := Collect(context.Background(), refs, 3, "vault-1", Options{Timeout: 5 * time.Second})
	defer res.Zero()
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= 5*time.Second {
		t.Fatalf("took %s: waited for the stalled release", took)
	}
	if hs[2].asked() != 1 || hs[0].asked() != 1 {
		t.Fatalf("releases asked: a %d, c %d", hs[0].asked(), hs[2].asked())
	}
	if got := res.Asked; len(got) != 3 {
		t.Fatalf("asked %v, want a, b and c", got)
	}
}

func TestReleaseWithKnownManifest(t *testing.T) {
	hs, refs, m := deal(t)
	hs[1].down = true
	res, err := Release(context.Background(), refs, m, "vault-1", Options{})
	defer res.Zero()
	if err != nil || len(res.Threshold()) != 3 {
		t.Fatalf("release: %v", err)
	}
	_, other := keys(t, 1, 5, 3)
	if _, err := Release(context.Background(), refs, other, "vault-1", Options{}); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("release against another manifest: %v", err)
	}
}

// keepHolder remembers the buffers it handed out, as the transport's would
// be: the pipeline must zero them once it has copied what it keeps.
type keepHolder struct {
	*fakeHolder
	mu   sync.Mutex
	gave [][]byte
}

func (h *keepHolder) Release(ctx context.Context, node string, gen uint64) ([]sharerpc.Share, error) {
	ss, err := h.fakeHolder.Release(ctx, node, gen)
	h.mu.Lock()
	for _, s := range ss {
		h.gave = append(h.gave, s.Value)
	}
	h.mu.Unlock()
	return ss, err
}

// TestCollectZeroes: every buffer a holder's answer came in is zeroed,
// kept shares are copies (in locked memory where the OS allows), and
// Result.Zero wipes those; late answers are zeroed as they arrive.
func TestCollectZeroes(t *testing.T) {
	hs, refs, _ := deal(t)
	var keeps []*keepHolder
	for i := range refs {
		k := &keepHolder{fakeHolder: hs[i]}
		keeps, refs[i].Holder = append(keeps, k), k
	}
	res, err := Collect(context.Background(), refs, 3, "vault-1", Options{Every: true})
	if err != nil {
		t.Fatal(err)
	}
	zero := func(b []byte) bool {
		for _, x := range b {
			if x != 0 {
				return false
			}
		}
		return true
	}
	for i, k := range keeps {
		k.mu.Lock()
		for _, b := range k.gave {
			if !zero(b) {
				t.Errorf("holder %d's answer buffer was not zeroed", i)
			}
		}
		k.mu.Unlock()
	}
	kept := res.Shares
	if len(kept) != 5 || zero(kept[0].Value) {
		t.Fatalf("%d shares kept", len(kept))
	}
	res.Zero()
	for _, s := range kept {
		if !zero(s.Value) {
			t.Fatalf("share %d not zeroed by Result.Zero", s.Index)
		}
	}
}

// TestLateAnswersAreLogged: a call still out when the collection has its
// threshold is accounted for in the log once it ends. A holder that
// refuses late is named at warning level, as one that refused in time is;
// a call cut short by the collection's end is noted at debug level.
func TestLateAnswersAreLogged(t *testing.T) {
	for _, c := range []struct {
		name, want string
		tune       func(*fakeHolder)
	}{
		{"late-refusal", `"level":"WARN","msg":"holder did not release its shares","holder":"a","node":"vault-1","err":"sealed file failed authentication (tampered or corrupt)","late":true`,
			func(h *fakeHolder) { h.refuseAfter = 200 * time.Millisecond }},
		{"cut-short", `"level":"DEBUG","msg":"call to holder cut short: the collection already had what it needed","holder":"a","node":"vault-1","call":"release"`,
			func(h *fakeHolder) { h.stall = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs, refs, _ := deal(t)
			c.tune(hs[0]) // b and c hold a threshold between them
			var logs proctest.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			res, err := Collect(context.Background(), refs, 3, "vault-1", Options{Timeout: 5 * time.Second, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			res.Zero()
			proctest.WaitFor(t, 5*time.Second, "the late answer in the log", func() bool { return strings.Contains(logs.String(), c.want) })
		})
	}
}
