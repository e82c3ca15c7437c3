package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Steps of Init.
const (
	StepInitVault Step = "init-vault"
	StepInitStage Step = "init-stage"
	StepInitCheck Step = "init-read-back"
	StepInitCmt   Step = "init-commit"
)

// ErrAlreadyInitialized is returned by Init for a node that is initialized.
var ErrAlreadyInitialized = errors.New("vault is already initialized")

// InitConfig is what Init needs.
type InitConfig struct {
	// Node is the Vault node to initialize.
	Node    InitNode
	Holders []HolderRef
	// Plan is the split and who gets which shares (Plan.Indices).
	Plan shares.Plan
	// RootTokenPGPKey, if set, is a base64 PGP public key that Vault
	// encrypts the root token to.
	RootTokenPGPKey string
	Options
}

// InitResult is what Init did. RootToken is set as soon as Vault answered,
// even if a later step failed: print or encrypt it in every case.
type InitResult struct {
	Generation   uint64
	RootToken    string
	PGPEncrypted bool
	Manifest     shares.Manifest
	// Committed is set once every holder made the generation current.
	Committed bool
}

// Init initializes Vault and deals the unseal key's shares to the holders
// in two phases, then unseals the node through the holders to prove that
// they can. See the package documentation for what a failure leaves: the
// steps below are its table's rows, in order.
func Init(ctx context.Context, c InitConfig) (InitResult, error) {
	c.defaults()
	r := &initRun{InitConfig: c}
	defer shares.ZeroShares(r.all)
	if err := r.check(ctx); err != nil {
		return r.res, err
	}
	for _, s := range []struct {
		step Step
		do   func(context.Context) error
	}{
		{StepInitVault, r.initVault},
		{StepInitStage, r.stage},
		{StepInitCheck, r.readBack},
		{StepInitCmt, r.commit},
	} {
		if err := s.do(ctx); err != nil {
			return r.res, err
		}
		// An error here stops init without clean-up, as a kill would.
		if err := r.after(s.step); err != nil {
			if !r.res.Committed {
				return r.lost(err)
			}
			return r.res, err
		}
	}
	return r.res, c.verifyInit(ctx, r.res.Manifest)
}

// initRun is one Init in progress.
type initRun struct {
	InitConfig
	res InitResult
	all []shares.Share // Vault's keys, as shares
}

// lost is the error once Vault is initialized and its keys are not
// committed anywhere.
func (r *initRun) lost(err error) (InitResult, error) {
	return r.res, fmt.Errorf("%w: vault node %s is initialized but its unseal keys were not committed. Holders that staged generation %d keep it (they refuse to drop a first generation once Vault is initialized): 'unsealer rekey --recover' unseals the sealed node with it and commits it if a threshold was staged. Otherwise the keys are gone and Vault holds no data yet: stop Vault, wipe its storage, run 'unsealer init --abort', then rerun 'unsealer init'", err, r.Node.Name, r.res.Generation)
}

// check is the start: the plan deals to the configured holders, the node
// is not initialized, and every holder answers and accepts stage calls
// (probed with an Abort of the new generation, which changes nothing)
// before Vault makes keys that would exist nowhere else.
func (r *initRun) check(ctx context.Context) error {
	if err := r.Plan.Validate(); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	ids := make([]string, len(r.Holders))
	for i, h := range r.Holders {
		ids[i] = h.ID
	}
	for _, a := range r.Plan.Holders {
		if !slices.Contains(ids, a.Holder) {
			return fmt.Errorf("plan deals shares to %s, which is not among the holders", a.Holder)
		}
	}
	st, err := r.Node.Vault.SealStatus(ctx)
	if err != nil {
		return fmt.Errorf("vault node %s: %w: start it, then rerun", r.Node.Name, err)
	}
	if st.Initialized {
		return fmt.Errorf("vault node %s: %w: init deals the keys only once; to replace the shares run 'unsealer rekey'", r.Node.Name, ErrAlreadyInitialized)
	}
	a := Agree(ctx, r.Holders)
	if len(a.Errs) > 0 {
		return fmt.Errorf("every holder must be reachable to deal the shares: %s; nothing was changed, rerun when they are up", a.Unreachable())
	}
	for _, g := range a.Current {
		r.res.Generation = max(r.res.Generation, g)
	}
	r.res.Generation++
	if _, err := r.onAll(ctx, "check of stage rights (abort of nothing)", r.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Abort(ctx, r.res.Generation)
	}); err != nil {
		return fmt.Errorf("%w; nothing was changed: fix the holders' policy or certificates and rerun", err)
	}
	return nil
}

// initVault is init-vault: sys/init, and the keys checked.
func (r *initRun) initVault(ctx context.Context) error {
	r.printf("initializing vault node %s: %d shares, threshold %d, generation %d", r.Node.Name, r.Plan.Shares, r.Plan.Threshold, r.res.Generation)
	out, err := r.Node.Vault.Init(ctx, vaultnode.InitRequest{Shares: r.Plan.Shares, Threshold: r.Plan.Threshold, RootTokenPGPKey: r.RootTokenPGPKey})
	if err != nil {
		return fmt.Errorf("%w: nothing was dealt; fix it and rerun 'unsealer init'", err)
	}
	r.res.RootToken, r.res.PGPEncrypted = out.RootToken, r.RootTokenPGPKey != ""
	r.all = make([]shares.Share, len(out.Keys))
	for i, k := range out.Keys {
		r.all[i] = shares.Share{Index: uint8(i + 1), Value: k}
	}
	if bad, err := shares.CheckConsistent(r.all, r.Plan.Threshold); err != nil {
		_, err = r.lost(fmt.Errorf("vault's keys are inconsistent (indices %v): %w", bad, err))
		return err
	}
	r.res.Manifest = shares.NewManifest(r.res.Generation, r.Plan.Threshold, r.all)
	return nil
}

// stage is init-stage, phase one: the generation is staged everywhere.
func (r *initRun) stage(ctx context.Context) error {
	if err := r.stageAll(ctx, r.Holders, r.Plan, r.all, r.res.Manifest, ""); err != nil {
		_ = r.abortAll(context.WithoutCancel(ctx), r.Holders, r.res.Generation)
		_, err = r.lost(err)
		return err
	}
	r.printf("staged generation %d on %d holders", r.res.Generation, len(r.Holders))
	return nil
}

// readBack is init-read-back: the staged generation is read back through
// the release path (the node is initialized and sealed, so the holders'
// policy allows it), which also proves each holder can release it.
func (r *initRun) readBack(ctx context.Context) error {
	if err := r.checkStaged(ctx, r.all, r.res.Generation); err != nil {
		_ = r.abortAll(context.WithoutCancel(ctx), r.Holders, r.res.Generation)
		_, err = r.lost(err)
		return err
	}
	return nil
}

// commit is init-commit, phase two. From here the holders hold the only
// copy.
func (r *initRun) commit(ctx context.Context) error {
	if _, err := r.onAll(ctx, fmt.Sprintf("commit of generation %d", r.res.Generation), r.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Commit(ctx, r.res.Generation)
	}); err != nil {
		return fmt.Errorf("%w: the holders that did not commit still have it staged and can release it; rerun 'unsealer init --commit %d' when they are up", err, r.res.Generation)
	}
	r.res.Committed = true
	r.printf("committed generation %d on every holder", r.res.Generation)
	return nil
}

// checkStaged releases the staged generation from every holder and checks
// that each gave back exactly the shares it was dealt.
func (c InitConfig) checkStaged(ctx context.Context, all []shares.Share, gen uint64) error {
	idx := c.Plan.Indices()
	_, err := c.onAll(ctx, fmt.Sprintf("read-back of staged generation %d", gen), c.Holders, func(ctx context.Context, h HolderRef) error {
		ws, err := h.Holder.Release(ctx, c.Node.Name, gen)
		if err != nil {
			return err
		}
		defer func() {
			for _, w := range ws {
				shares.Zero(w.Value)
			}
		}()
		if len(ws) != len(idx[h.ID]) {
			return fmt.Errorf("holder %s gave back %d shares, it was dealt %d", h.ID, len(ws), len(idx[h.ID]))
		}
		for _, w := range ws {
			if !slices.Contains(idx[h.ID], w.Index) || string(w.Value) != string(all[w.Index-1].Value) {
				return fmt.Errorf("holder %s gave back share index %d, which differs from what it was dealt", h.ID, w.Index)
			}
		}
		return nil
	})
	return err
}

// CommitInit finishes an init whose commit failed on some holders.
func CommitInit(ctx context.Context, hs []HolderRef, gen uint64, o Options) error {
	o.defaults()
	_, err := o.onAll(ctx, fmt.Sprintf("commit of generation %d", gen), hs, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Commit(ctx, gen)
	})
	return err
}

// AbortInit drops a staged generation on every holder, after an init that
// was killed before its commit, but only while node is not initialized:
// once Vault is, the staged generation may be its only key, and
// 'unsealer rekey --recover' tests it and commits it instead. gen 0 means
// the one init stages: the newest generation the holders hold, plus one.
func AbortInit(ctx context.Context, node Node, hs []HolderRef, gen uint64, o Options) error {
	o.defaults()
	st, err := node.Vault.SealStatus(ctx)
	if err != nil {
		return fmt.Errorf("vault node %s: %w: cannot confirm that it is not initialized; nothing was dropped: start it and rerun", node.Name, err)
	}
	if gen == 0 {
		for _, g := range Agree(ctx, hs).Current {
			gen = max(gen, g+1)
		}
	}
	if st.Initialized {
		return fmt.Errorf("vault node %s is initialized, so staged generation %d may be its only key: nothing was dropped; run 'unsealer rekey --recover', which tests it and commits it", node.Name, gen)
	}
	return o.abortAll(ctx, hs, gen)
}

// verifyInit reads every holder's manifest back and unseals the node from
// the holders' committed shares.
func (c InitConfig) verifyInit(ctx context.Context, m shares.Manifest) error {
	if err := readBack(ctx, c.Holders, m); err != nil {
		return fmt.Errorf("%w: run 'unsealer status' and check the holders named", err)
	}
	c.printf("every holder reports the same manifest (generation %d)", m.Generation)
	n, err := c.Options.UnsealFromHolders(ctx, []Node{c.Node.Node()}, c.Holders)
	if err != nil {
		return fmt.Errorf("the shares are dealt, but unsealing %s through the holders failed: %w: check the holders' policy for this unsealer", c.Node.Name, err)
	}
	if n == 0 {
		// Nothing was submitted because the node was unsealed already: a
		// coordinator running beside init got there first. Say so only
		// if Vault agrees.
		st, err := c.Node.Vault.SealStatus(ctx)
		if err != nil || st.Sealed {
			return fmt.Errorf("the shares are dealt, but %s is still sealed and nothing was submitted to it (%v): run 'unsealer status'", c.Node.Name, err)
		}
		c.printf("%s: unsealed already (a running coordinator unsealed it from the holders)", c.Node.Name)
	}
	return nil
}
