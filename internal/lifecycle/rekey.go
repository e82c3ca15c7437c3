package lifecycle

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Steps of Rekey, in order.
const (
	StepRekeyInit   Step = "rekey-init"
	StepCollect     Step = "collect"
	StepRekeyUpdate Step = "rekey-update"
	StepStage       Step = "stage"
	StepVerify      Step = "verify"
	StepCommit      Step = "commit"
)

// RekeySteps lists the steps of Rekey in order.
var RekeySteps = []Step{StepRekeyInit, StepCollect, StepRekeyUpdate, StepStage, StepVerify, StepCommit}

// OldShares supplies a threshold of the current generation's shares,
// verified against m, for the rekey of node with nonce (which has started
// when it is called). The caller of Rekey zeroes them.
type OldShares func(ctx context.Context, m shares.Manifest, node, nonce string) ([]shares.Share, error)

// RekeyConfig is what Rekey needs.
type RekeyConfig struct {
	// Node is the (active, unsealed) Vault node to rekey through.
	Node    RekeyNode
	Holders []HolderRef
	// Plan is the new split and allotment.
	Plan shares.Plan
	// Old supplies the current shares (from holders, or typed).
	Old OldShares
	Options
}

// RekeyResult is what Rekey did.
type RekeyResult struct {
	From, To uint64
	Manifest shares.Manifest
}

// Rekey replaces the unseal key's shares: Vault's rekey with verification,
// with the new generation staged on the holders before Vault is told to
// switch, and committed after. See the package documentation for what a
// kill at each step leaves and how 'unsealer rekey --recover' resolves it:
// the steps below are its table's rows, in order.
//
// It never drops a generation Vault may use: it refuses to start while a
// holder has one staged, and it drops the generation it staged only while
// Vault provably still uses the old one.
func Rekey(ctx context.Context, c RekeyConfig) (RekeyResult, error) {
	c.defaults()
	r := &rekeyRun{RekeyConfig: c, vr: c.Node.Vault}
	defer r.zero()
	if err := r.check(ctx); err != nil {
		return r.res, err
	}
	for _, s := range []struct {
		step Step
		do   func(context.Context) error
	}{
		{StepRekeyInit, r.begin},
		{StepCollect, r.collectOld},
		{StepRekeyUpdate, r.update},
		{StepStage, r.stage},
		{StepVerify, r.verify},
		{StepCommit, r.commit},
	} {
		if err := s.do(ctx); err != nil {
			return r.res, err
		}
		// An error here stops the rekey without clean-up, as a kill would.
		if err := r.after(s.step); err != nil {
			return r.res, err
		}
	}
	if err := readBack(ctx, c.Holders, r.res.Manifest); err != nil {
		return r.res, fmt.Errorf("%w: run 'unsealer status'", err)
	}
	c.printf("every holder reports the same manifest (generation %d)", r.res.To)
	return r.res, nil
}

// rekeyRun is one Rekey in progress.
type rekeyRun struct {
	RekeyConfig
	vr  Rekeyer
	res RekeyResult
	// current is the manifest of the generation Vault uses at the start.
	current shares.Manifest
	// rk is Vault's rekey: its nonce, then its verification nonce.
	rk vaultnode.RekeyStatus
	// staged says whether res.To may be staged on some holder.
	staged         bool
	old, newShares []shares.Share
}

func (r *rekeyRun) zero() {
	shares.ZeroShares(r.old)
	shares.ZeroShares(r.newShares)
}

// cancel ends the rekey after an error before any verify share was sent:
// Vault uses generation From whatever else happens (cancelRekey).
func (r *rekeyRun) cancel(ctx context.Context, err error) error {
	return r.cancelRekey(context.WithoutCancel(ctx), r.vr, r.rk.Nonce, r.res, r.staged, err)
}

// check is the start: every holder answers, none has a generation staged,
// all hold the same one, and Vault has no rekey in progress.
func (r *rekeyRun) check(ctx context.Context) error {
	if err := r.Plan.Validate(); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	h := ReadHoldings(ctx, r.Holders)
	if len(h.Errs) > 0 {
		return fmt.Errorf("every holder must be reachable to deal new shares: %s; nothing was changed, rerun when they are up", h.Unreachable())
	}
	if gens := h.StagedGens(); len(gens) > 0 {
		return fmt.Errorf("holders %v have generation %d staged from an interrupted rekey or init, and vault may use it: nothing was changed; run 'unsealer rekey --recover' first, which tests it and commits or drops it",
			h.StagedHolders(gens[0]), gens[0])
	}
	lo, _ := h.Range()
	switch {
	case h.Empty():
		if err := r.checkAdopt(ctx); err != nil {
			return err
		}
	case lo == 0:
		return fmt.Errorf("some holders hold nothing and others a generation (%s): this is neither an adoption (every holder empty) nor a rekey (every holder on one generation); nothing was changed: run 'unsealer rekey --status' and 'unsealer rekey --recover'", h.Generations())
	default:
		r.current = h.Manifest
		if r.current.Generation == 0 || len(h.Agreeing) != len(r.Holders) {
			return fmt.Errorf("the holders do not all hold the same generation (%s): nothing was changed; run 'unsealer rekey --recover' first", h.Generations())
		}
	}
	r.res.From, r.res.To = r.current.Generation, r.current.Generation+1
	st, err := r.vr.RekeyStatus(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%w: rekey needs the node unsealed and active; nothing was changed", err)
	case st.Started:
		return fmt.Errorf("vault node %s has a rekey in progress already (nonce %s) and no holder has anything staged: nothing was changed; run 'unsealer rekey --abort', which cancels it", r.Node.Name, st.Nonce)
	}
	return nil
}

// begin is rekey-init: Vault starts a rekey with verification.
func (r *rekeyRun) begin(ctx context.Context) error {
	st, err := r.vr.RekeyInit(ctx, r.Plan.Shares, r.Plan.Threshold)
	if err != nil {
		return fmt.Errorf("%w: nothing was changed", err)
	}
	r.rk = st
	r.printf("rekey started on %s (nonce %s): %d shares, threshold %d, with verification", r.Node.Name, st.Nonce, r.Plan.Shares, r.Plan.Threshold)
	return nil
}

// collectOld is collect: a threshold of the current generation, verified.
func (r *rekeyRun) collectOld(ctx context.Context) error {
	old, err := r.Old(ctx, r.current, r.Node.Name, r.rk.Nonce)
	r.old = old
	if err != nil {
		return r.cancel(ctx, fmt.Errorf("collecting the current shares of %s: %w", genWords(r.current.Generation), err))
	}
	if err := checkOld(old, r.current); err != nil {
		return r.cancel(ctx, err)
	}
	return nil
}

// update is rekey-update: the old shares go to Vault, which returns the
// new keys and waits for their verification.
func (r *rekeyRun) update(ctx context.Context) error {
	outcome, up, err := r.submitOld(ctx, r.vr, r.rk.Nonce, r.old)
	r.newShares = make([]shares.Share, len(up.Keys))
	for i, k := range up.Keys {
		r.newShares[i] = shares.Share{Index: uint8(i + 1), Value: k}
	}
	switch {
	case outcome == oldRejected && r.res.From == 0:
		return r.paperRejected(ctx, err)
	case outcome == oldRejected:
		return r.rejected(ctx, r.vr, r.rk.Nonce, r.res, err)
	case outcome == oldFailed:
		return r.cancel(ctx, err)
	}
	r.rk.VerificationNonce = up.VerificationNonce
	if len(r.newShares) != r.Plan.Shares || r.rk.VerificationNonce == "" {
		return r.cancel(ctx, fmt.Errorf("vault node %s did not complete the rekey with verification (%d keys)", r.Node.Name, len(r.newShares)))
	}
	if bad, err := shares.CheckConsistent(r.newShares, r.Plan.Threshold); err != nil {
		return r.cancel(ctx, fmt.Errorf("vault's new keys are inconsistent (indices %v): %w", bad, err))
	}
	r.res.Manifest = shares.NewManifest(r.res.To, r.Plan.Threshold, r.newShares)
	return nil
}

// stage is stage: To is staged on every holder. r.rk.Nonce is the rekey
// these shares belong to: the holders accept a Stage only while Vault
// shows it.
func (r *rekeyRun) stage(ctx context.Context) error {
	r.staged = true
	if err := r.stageAll(ctx, r.Holders, r.Plan, r.newShares, r.res.Manifest, r.rk.Nonce); err != nil {
		return r.cancel(ctx, err)
	}
	r.printf("staged generation %d on %d holders", r.res.To, len(r.Holders))
	return nil
}

// verify is verify: Vault switches keys when the last verify share lands.
// The holders hold the new generation (staged) before that, and the old
// one (current) until the commit. From the first verify share on, an
// error leaves the switch unknown: only Vault's rekey status can prove it
// has not happened (verifyFailed).
func (r *rekeyRun) verify(ctx context.Context) error {
	t := r.Plan.Threshold
	for i, s := range r.newShares[:t] {
		vs, err := r.vr.RekeyVerify(ctx, r.rk.VerificationNonce, s.Value)
		if err != nil {
			return r.verifyFailed(context.WithoutCancel(ctx), r.vr, r.rk.Nonce, r.res, fmt.Errorf("rekey verify with new share %d: %w", i+1, err))
		}
		if vs.Complete {
			break
		}
		if i == t-1 {
			return r.verifyFailed(context.WithoutCancel(ctx), r.vr, r.rk.Nonce, r.res, fmt.Errorf("vault node %s did not confirm the verification", r.Node.Name))
		}
	}
	r.printf("vault node %s verified the new shares and uses generation %d now", r.Node.Name, r.res.To)
	return nil
}

// commit is commit: every holder makes To current.
func (r *rekeyRun) commit(ctx context.Context) error {
	if _, err := r.onAll(ctx, fmt.Sprintf("commit of generation %d", r.res.To), r.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Commit(ctx, r.res.To)
	}); err != nil {
		return fmt.Errorf("%w: vault uses generation %d, which those holders still have staged (they can release it): run 'unsealer rekey --recover' when they are up", err, r.res.To)
	}
	r.printf("committed generation %d on every holder", r.res.To)
	return nil
}

// cancelRekey ends a rekey that failed before any verify share was sent:
// Vault uses generation res.From whatever happens here. If it staged
// res.To it drops it first, while the rekey is still in progress (the
// holders allow the drop only while their own look at Vault shows the rekey
// the generation was staged under), then cancels the rekey with its nonce.
// A drop that fails leaves res.To staged under a rekey still waiting for
// verification, which --recover drops on that proof.
func (c RekeyConfig) cancelRekey(ctx context.Context, vr Rekeyer, nonce string, res RekeyResult, staged bool, err error) error {
	if staged {
		if aerr := c.abortAll(ctx, c.Holders, res.To); aerr != nil {
			return fmt.Errorf("%w; dropping staged generation %d failed (%w), so rekey %s was left in progress: vault still uses %s; run 'unsealer rekey --recover'", err, res.To, aerr, nonce, genWords(res.From))
		}
	}
	if cerr := vr.RekeyCancel(ctx, nonce); cerr != nil {
		return fmt.Errorf("%w; cancelling rekey %s failed (%w): vault still uses %s; run 'unsealer rekey --abort'", err, nonce, cerr, genWords(res.From))
	}
	return fmt.Errorf("%w: rekey cancelled; %s stays in force", err, genWords(res.From))
}

// verifyFailed handles an error after verify shares were sent: Vault may
// have switched. Only if it still shows this very rekey in progress has it
// not, and then the rekey is cancelled and the staged generation dropped.
// Otherwise both generations are kept for --recover to test.
func (c RekeyConfig) verifyFailed(ctx context.Context, vr Rekeyer, nonce string, res RekeyResult, err error) error {
	rk, serr := vr.RekeyStatus(ctx)
	if serr == nil && rk.Started && rk.Nonce == nonce {
		return c.cancelRekey(ctx, vr, nonce, res, true, err)
	}
	return fmt.Errorf("%w: vault node %s may use generation %d now (its rekey status: %v); the holders keep %s and staged generation %d: run 'unsealer rekey --recover'",
		err, c.Node.Name, res.To, rekeyStatusWords(rk, serr), genWords(res.From), res.To)
}

// rejected handles Vault refusing a threshold of the holders' committed
// generation in rekey-update: it does not use that generation. If a
// holder has res.To staged (left by a rekey interrupted before this
// version refused to start over it, or staged while this one started),
// that is the one: it is committed, never dropped. Commit is asked of
// every holder directly, so that a staged generation a probe could not
// see is not missed; a holder without it refuses and keeps what it has.
func (c RekeyConfig) rejected(ctx context.Context, vr Rekeyer, nonce string, res RekeyResult, err error) error {
	if cerr := vr.RekeyCancel(context.WithoutCancel(ctx), nonce); cerr != nil {
		c.printf("cancelling rekey %s failed: %v", nonce, cerr)
	}
	proof := fmt.Errorf("vault node %s rejected a threshold of generation %d's shares (%w), so it does not use generation %d", c.Node.Name, res.From, err, res.From)
	var mu sync.Mutex
	var done, failed []string
	forEach(c.Holders, func(h HolderRef) {
		cerr := h.Holder.Commit(ctx, res.To)
		mu.Lock()
		defer mu.Unlock()
		if cerr != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", h.ID, cerr))
			return
		}
		done = append(done, h.ID)
	})
	sort.Strings(done)
	sort.Strings(failed)
	switch {
	case len(done) == len(c.Holders):
		return fmt.Errorf("%w: committed staged generation %d on every holder; nothing was rekeyed: rerun 'unsealer rekey' to rotate the shares", proof, res.To)
	case len(done) > 0:
		return fmt.Errorf("%w: committed staged generation %d on %v; the others did not commit it (%s): run 'unsealer rekey --recover' when they are up", proof, res.To, done, strings.Join(failed, "; "))
	}
	return fmt.Errorf("%w, and no holder has generation %d staged: nothing was changed; run 'unsealer rekey --status' and check where the holders' shares came from", proof, res.To)
}

// Outcomes of submitOld.
type oldOutcome int

const (
	// oldFailed: an error that proves nothing about Vault's key.
	oldFailed oldOutcome = iota
	// oldAccepted: Vault combined the shares to its key and made new keys.
	oldAccepted
	// oldRejected: Vault could not open its root key with them.
	oldRejected
)

// submitOld gives a threshold of old shares to the rekey with nonce, one
// by one, and checks that the progress counts ours only: keys another
// client slipped in would make a rejection prove nothing. On oldAccepted
// the returned update holds the new keys (the caller zeroes them).
func (o *Options) submitOld(ctx context.Context, vr Rekeyer, nonce string, old []shares.Share) (oldOutcome, vaultnode.RekeyUpdate, error) {
	for i, s := range old {
		up, err := vr.RekeyUpdate(ctx, nonce, s.Value)
		switch {
		case err != nil && i == len(old)-1 && vaultnode.IsKeyRejected(err):
			return oldRejected, up, err
		case err != nil:
			return oldFailed, up, fmt.Errorf("rekey update with share %d of %d: %w", i+1, len(old), err)
		case up.Complete && i == len(old)-1:
			return oldAccepted, up, nil
		case up.Complete || up.Progress != i+1:
			zeroKeys(up.Keys)
			return oldFailed, vaultnode.RekeyUpdate{}, fmt.Errorf("another client gave keys to rekey %s (progress %d after %d of ours)", nonce, up.Progress, i+1)
		}
		o.printf("  rekey progress %d/%d", up.Progress, up.Required)
	}
	return oldFailed, vaultnode.RekeyUpdate{}, fmt.Errorf("vault did not complete rekey %s after %d shares", nonce, len(old))
}

func rekeyStatusWords(rk vaultnode.RekeyStatus, err error) string {
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case !rk.Started:
		return "no rekey in progress"
	}
	return "rekey " + rk.Nonce + " in progress"
}

func zeroKeys(keys [][]byte) {
	for _, k := range keys {
		shares.Zero(k)
	}
}

// checkOld refuses old shares that are not a threshold of m's generation.
// Generation 0 is an adopted Vault's: the operators' shares, which no
// manifest records (checkPaper).
func checkOld(old []shares.Share, m shares.Manifest) error {
	if m.Generation == 0 {
		return checkPaper(old, m.Threshold)
	}
	if len(old) != m.Threshold {
		return fmt.Errorf("%d current shares given, the threshold is %d; nothing was changed", len(old), m.Threshold)
	}
	for _, s := range old {
		if err := m.Verify(s); err != nil {
			return fmt.Errorf("current share: %w: shares of two generations are never mixed; nothing was changed", err)
		}
	}
	return shares.CheckDistinct(old)
}

// FromCollector adapts typed or file shares to OldShares: the Collector
// must have been filled against the same manifest.
func FromCollector(c *Collector) OldShares {
	return func(_ context.Context, m shares.Manifest, _, _ string) ([]shares.Share, error) {
		switch {
		case m.Generation == 0 && c.Manifest.Generation != 0:
			return nil, fmt.Errorf("the shares were checked against generation %d, but the holders hold none: rerun", c.Manifest.Generation)
		case m.Generation == 0 && c.Threshold != m.Threshold:
			return nil, fmt.Errorf("%d shares given, vault's threshold is %d: rerun with %d", c.Threshold, m.Threshold, m.Threshold)
		case m.Generation != 0 && !c.Manifest.Equal(m):
			return nil, fmt.Errorf("the shares were checked against generation %d, the holders hold %d", c.Manifest.Generation, m.Generation)
		}
		out := make([]shares.Share, 0, c.Count())
		for _, s := range c.Shares() {
			out = append(out, s.Clone())
		}
		return out, nil
	}
}

// FromHolders releases the current shares from the holders for the rekey
// in progress: the holders allow it to operator identities only, and only
// while their own check sees the node rekeying with this very nonce, and
// they audit it.
func FromHolders(hs []HolderRef) OldShares {
	byID := make(map[string]Holder, len(hs))
	for _, h := range hs {
		byID[h.ID] = h.Holder
	}
	return func(ctx context.Context, m shares.Manifest, node, nonce string) ([]shares.Share, error) {
		if m.Generation == 0 {
			return nil, ErrNoPaperShares
		}
		ss, err := release(ctx, hs, m, node, func(ctx context.Context, ref unseal.HolderRef, node string, gen uint64) ([]sharerpc.Share, error) {
			return byID[ref.ID].ReleaseForRekey(ctx, node, gen, nonce)
		})
		if err != nil {
			return nil, fmt.Errorf("for the rekey of %s: %w", node, err)
		}
		return ss, nil
	}
}
