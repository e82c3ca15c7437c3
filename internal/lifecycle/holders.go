package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// DefaultRetryFor is how long stage and commit are retried on a holder
// that fails, so that a holder restarting during init or rekey does not
// abort it.
const DefaultRetryFor = 30 * time.Second

// Agreement is what the holders say about the current generation.
type Agreement struct {
	// Manifest is the one a majority of all holders hold (unseal.Tally);
	// zero if none.
	Manifest shares.Manifest
	// Agreeing are the holders that hold it.
	Agreeing []HolderRef
	// Current is each answering holder's current generation.
	Current map[string]uint64
	// Manifests is each answering holder's manifest.
	Manifests map[string]shares.Manifest
	// Staged is each answering holder's staged generation's manifest, for
	// the holders that have one.
	Staged map[string]shares.Manifest
	// Errs is why a holder did not answer.
	Errs map[string]error
}

// Agree asks every holder for its manifest, in parallel, and waits for
// them all.
func Agree(ctx context.Context, hs []HolderRef) Agreement {
	a := Agreement{Current: map[string]uint64{}, Manifests: map[string]shares.Manifest{}, Staged: map[string]shares.Manifest{}, Errs: map[string]error{}}
	var mu sync.Mutex
	forEach(hs, func(h HolderRef) {
		w, err := h.Holder.Manifest(ctx)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			a.Errs[h.ID] = err
			return
		}
		m := unseal.Current.Pick(w)
		a.Current[h.ID], a.Manifests[h.ID] = m.Generation, m
		if st := unseal.Staged.Pick(w); st.Generation != 0 {
			a.Staged[h.ID] = st
		}
	})
	t := unseal.NewTally(len(hs))
	for _, h := range hs {
		t.Add(h.ID, a.Manifests[h.ID])
	}
	m, ids, ok := t.Majority()
	if !ok {
		return a
	}
	a.Manifest = m
	for _, h := range hs {
		if slices.Contains(ids, h.ID) {
			a.Agreeing = append(a.Agreeing, h)
		}
	}
	return a
}

// Unreachable names the holders that did not answer, with why.
func (a Agreement) Unreachable() string {
	var parts []string
	for id, err := range a.Errs {
		parts = append(parts, fmt.Sprintf("%s: %v", id, err))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Collect releases shares of m's generation for node from the holders that
// hold m (in parallel, each call within unseal.DefaultTimeout), verifies
// each against m, and returns exactly a threshold of them, sorted by
// index. The caller zeroes them.
func Collect(ctx context.Context, holders []HolderRef, m shares.Manifest, node string) ([]shares.Share, error) {
	return release(ctx, holders, m, node, nil)
}

// collectForProof is Collect for an unseal that is to prove a generation
// to the holders: every holder that holds m is asked and waited for (not
// only the first threshold), and a holder that could not check the node
// ("target unchecked", as right after it or Vault restarted) is asked
// again a few times within its call's deadline. Each holder proves a
// generation only by seeing the node unsealed after its own release, and
// drops a staged generation only on such a proof: a holder left out of
// the unseal could not settle.
func collectForProof(ctx context.Context, holders []HolderRef, m shares.Manifest, node string) ([]shares.Share, error) {
	return releaseWith(ctx, holders, m, node, unseal.Options{Every: true, Release: releaseRetryingUnchecked})
}

// releaseRetryingUnchecked asks ref for its shares, again while it answers
// that it could not check the node, at most uncheckedRetries times.
func releaseRetryingUnchecked(ctx context.Context, ref unseal.HolderRef, node string, gen uint64) ([]sharerpc.Share, error) {
	for i := 0; ; i++ {
		ss, err := ref.Holder.Release(ctx, node, gen)
		d, denied := sharerpc.DenialFromError(err)
		if err == nil || !denied || d.Reason != policy.ReasonTargetUnchecked || i == uncheckedRetries {
			return ss, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(uncheckedPause):
		}
	}
}

const (
	uncheckedRetries = 5
	uncheckedPause   = 200 * time.Millisecond
)

// release runs the pipeline's release step (unseal.Release) with rel, or
// Holder.Release if rel is nil, and keeps exactly a threshold.
func release(ctx context.Context, holders []HolderRef, m shares.Manifest, node string, rel unseal.ReleaseFunc) ([]shares.Share, error) {
	return releaseWith(ctx, holders, m, node, unseal.Options{Release: rel})
}

// releaseWith runs unseal.Release with o and keeps exactly a threshold.
func releaseWith(ctx context.Context, holders []HolderRef, m shares.Manifest, node string, o unseal.Options) ([]shares.Share, error) {
	res, err := unseal.Release(ctx, refs(holders), m, node, o)
	if err != nil {
		return nil, err
	}
	shares.ZeroShares(res.Shares[m.Threshold:])
	return res.Threshold(), nil
}

// forEach runs fn for every holder in parallel and waits.
func forEach(hs []HolderRef, fn func(HolderRef)) {
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() { defer wg.Done(); fn(h) }()
	}
	wg.Wait()
}

// onAll runs call on every holder, retrying the ones that fail until
// RetryFor passes. It returns the holders it succeeded on and an error
// naming each holder that still fails.
func (o *Options) onAll(ctx context.Context, what string, hs []HolderRef, call func(context.Context, HolderRef) error) ([]string, error) {
	deadline := time.Now().Add(o.RetryFor)
	pending := append([]HolderRef(nil), hs...)
	var done []string
	reported := map[string]bool{}
	for {
		var mu sync.Mutex
		var still []HolderRef
		errs := map[string]error{}
		forEach(pending, func(h HolderRef) {
			err := call(ctx, h)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				still, errs[h.ID] = append(still, h), err
				return
			}
			done = append(done, h.ID)
		})
		if len(still) == 0 {
			sort.Strings(done)
			return done, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var parts []string
			for _, h := range still {
				parts = append(parts, fmt.Sprintf("%s: %v", h.ID, errs[h.ID]))
			}
			sort.Strings(done)
			return done, fmt.Errorf("%s failed on %d holder(s) after retrying %s: %s", what, len(still), o.RetryFor, strings.Join(parts, "; "))
		}
		for _, h := range still {
			if !reported[h.ID] {
				reported[h.ID] = true
				o.printf("  %s: holder %s failed (%v); retrying for up to %s", what, h.ID, errs[h.ID], o.RetryFor)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		pending = still
	}
}

// stageAll deals the new generation: each holder gets its plan indices and
// the whole manifest. nonce is the nonce of Vault's rekey that made the
// generation ("" for init): a holder that holds a generation already
// accepts the stage only while its own check of Vault sees that rekey.
func (o *Options) stageAll(ctx context.Context, hs []HolderRef, plan shares.Plan, all []shares.Share, m shares.Manifest, nonce string) error {
	idx := plan.Indices()
	byIndex := map[uint8]shares.Share{}
	for _, s := range all {
		byIndex[s.Index] = s
	}
	wm := sharerpc.ManifestFromShares(m)
	_, err := o.onAll(ctx, fmt.Sprintf("stage of generation %d", m.Generation), hs, func(ctx context.Context, h HolderRef) error {
		req := sharerpc.StageRequest{Generation: m.Generation, Manifest: wm, RekeyNonce: nonce}
		for _, i := range idx[h.ID] {
			// A copy per call: the transport may zero what it sent.
			req.Shares = append(req.Shares, sharerpc.Share{Index: i, Value: append([]byte(nil), byIndex[i].Value...)})
		}
		defer func() {
			for _, s := range req.Shares {
				shares.Zero(s.Value)
			}
		}()
		return h.Holder.Stage(ctx, req)
	})
	return err
}

// abortAll drops generation gen wherever it is staged, best effort, and
// says where it could not.
func (o *Options) abortAll(ctx context.Context, hs []HolderRef, gen uint64) error {
	var mu sync.Mutex
	var failed []string
	forEach(hs, func(h HolderRef) {
		if err := h.Holder.Abort(ctx, gen); err != nil {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s: %v", h.ID, err))
			mu.Unlock()
		}
	})
	if len(failed) > 0 {
		sort.Strings(failed)
		return fmt.Errorf("abort of staged generation %d failed on: %s", gen, strings.Join(failed, "; "))
	}
	o.printf("aborted staged generation %d on every holder", gen)
	return nil
}

// readBack checks that every holder now reports m as its current manifest.
func readBack(ctx context.Context, hs []HolderRef, m shares.Manifest) error {
	a := Agree(ctx, hs)
	var bad []string
	for _, h := range hs {
		got, ok := a.Manifests[h.ID]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s did not answer: %v", h.ID, a.Errs[h.ID]))
		case !got.Equal(m):
			bad = append(bad, fmt.Sprintf("%s reports generation %d with a different manifest", h.ID, got.Generation))
		}
	}
	if len(bad) > 0 {
		return errors.New("read-back of manifests: " + strings.Join(bad, "; "))
	}
	return nil
}
