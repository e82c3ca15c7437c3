package unseal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Errors returned by Collect and Release; the error wraps one of them and
// names what each holder answered.
var (
	// ErrNoQuorum is returned when no manifest is held by a majority of
	// the configured holders.
	ErrNoQuorum = errors.New("no manifest is held by a majority of holders")
	// ErrTooFewShares is returned when fewer than a threshold of verified
	// shares could be released.
	ErrTooFewShares = errors.New("too few verified shares reachable")
)

// DefaultTimeout bounds each call to a holder when Options.Timeout is 0.
const DefaultTimeout = 3 * time.Second

// ReleaseFunc asks one holder for its shares of generation gen.
type ReleaseFunc func(ctx context.Context, ref HolderRef, node string, gen uint64) ([]sharerpc.Share, error)

// Options tune a collection. Zero values pick the defaults.
type Options struct {
	// Timeout bounds each call to a holder on its own: a holder that
	// stalls costs at most this, and the others are asked meanwhile.
	Timeout time.Duration
	// Which generation of the holders' Manifest answers to collect.
	Which Which
	// Every asks every holder that holds the manifest and waits for them
	// all (each within Timeout), instead of stopping at a threshold: the
	// coordinator's fallback wants each holder's last release to be the
	// generation that unseals (see internal/holder/proof.go).
	Every bool
	// Release asks one holder for its shares; nil calls Holder.Release.
	// The lifecycle's rekey passes one that calls ReleaseForRekey.
	Release ReleaseFunc
	// Logger receives a warning per holder that did not help, and an
	// error per share that fails the manifest. Never share bytes.
	Logger *slog.Logger
	// BadShare, if set, is called once per share that fails the manifest.
	BadShare func(holderID string)
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Release == nil {
		o.Release = func(ctx context.Context, ref HolderRef, node string, gen uint64) ([]sharerpc.Share, error) {
			return ref.Holder.Release(ctx, node, gen)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result is a collection: a threshold (or, with Every, all) of the
// verified shares of one generation, and what the holders said.
type Result struct {
	Which    Which
	Manifest shares.Manifest
	// Shares are distinct and verified, sorted by index, in locked
	// buffers; at least Manifest.Threshold of them on success. Zero them.
	Shares []shares.Share
	// Answered is how many holders answered with a manifest of Which's
	// generation; Reachable how many verified shares were seen.
	Answered, Reachable int
	// Asked are the IDs of the holders asked to release, in the order
	// they were asked.
	Asked []string
	// Problems says, per holder, why it did not contribute.
	Problems map[string]string
}

// Zero wipes the collected shares.
func (r *Result) Zero() {
	if r != nil {
		shares.ZeroShares(r.Shares)
	}
}

// Threshold returns exactly a threshold of the shares, lowest indices first.
func (r *Result) Threshold() []shares.Share { return r.Shares[:r.Manifest.Threshold] }

func (r *Result) problem(id, format string, args ...any) {
	if r.Problems == nil {
		r.Problems = map[string]string{}
	}
	if _, ok := r.Problems[id]; !ok {
		r.Problems[id] = fmt.Sprintf(format, args...)
	}
}

// Why lists the problems, sorted by holder, for an error message.
func (r *Result) Why() string {
	parts := make([]string, 0, len(r.Problems))
	for id, p := range r.Problems {
		parts = append(parts, id+": "+p)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Collect asks every holder in refs for its manifest, finds the one a
// majority of the total configured holders agree on, asks every holder
// that holds it for its shares of node as soon as that is known, and
// returns as soon as a threshold of verified shares is in hand (see the
// package documentation). The Result is never nil; on error it holds no
// shares.
func Collect(ctx context.Context, refs []HolderRef, total int, node string, o Options) (*Result, error) {
	o.defaults()
	r := &run{o: o, node: node, res: &Result{Which: o.Which}, tally: NewTally(total), byID: map[string]*holderState{}}
	r.ch = make(chan answer, 2*len(refs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx
	for _, ref := range refs {
		r.state(ref.ID)
		r.outstanding++
		go func() {
			cctx, ccancel := context.WithTimeout(ctx, o.Timeout)
			defer ccancel()
			m, err := ref.Holder.Manifest(cctx)
			r.ch <- answer{ref: ref, manifest: true, m: o.Which.Pick(m), err: err}
		}()
	}
	r.loop(ctx)
	cancel()
	r.drain()
	if _, _, ok := r.tally.Majority(); !ok {
		return r.res, fmt.Errorf("%w: %d of %d holders answered with a %s generation, %d needed to agree (%s)",
			ErrNoQuorum, r.res.Answered, total, o.Which, r.tally.Need(), r.res.Why())
	}
	return r.finish()
}

// Release asks every holder in refs for its shares of m's generation for
// node, in parallel, and returns as soon as a threshold of them verify
// against m. Use it when the manifest is known already (a rekey's current
// generation); Collect otherwise.
func Release(ctx context.Context, refs []HolderRef, m shares.Manifest, node string, o Options) (*Result, error) {
	o.defaults()
	r := &run{o: o, node: node, res: &Result{Which: o.Which, Manifest: m}, byID: map[string]*holderState{}}
	r.ch = make(chan answer, len(refs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx
	r.agreed = true
	for _, ref := range refs {
		r.state(ref.ID).matched = append(r.state(ref.ID).matched, ref)
	}
	for _, ref := range refs {
		r.next(ref.ID)
	}
	r.loop(ctx)
	cancel()
	r.drain()
	return r.finish()
}
