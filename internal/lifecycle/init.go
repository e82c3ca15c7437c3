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
	// Node is the Vault node to initialize; its Vault must also be an
	// Initializer.
	Node    Node
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
// they can. See the package documentation for what a failure leaves.
func Init(ctx context.Context, c InitConfig) (InitResult, error) {
	c.defaults()
	var res InitResult
	vi, ok := c.Node.Vault.(Initializer)
	if !ok {
		return res, fmt.Errorf("vault node %s cannot be initialized through this client", c.Node.Name)
	}
	if err := c.Plan.Validate(); err != nil {
		return res, fmt.Errorf("plan: %w", err)
	}
	ids := make([]string, len(c.Holders))
	for i, h := range c.Holders {
		ids[i] = h.ID
	}
	for _, a := range c.Plan.Holders {
		if !slices.Contains(ids, a.Holder) {
			return res, fmt.Errorf("plan deals shares to %s, which is not among the holders", a.Holder)
		}
	}
	st, err := c.Node.Vault.SealStatus(ctx)
	if err != nil {
		return res, fmt.Errorf("vault node %s: %w: start it, then rerun", c.Node.Name, err)
	}
	if st.Initialized {
		return res, fmt.Errorf("vault node %s: %w: init deals the keys only once; to replace the shares run 'unsealer rekey'", c.Node.Name, ErrAlreadyInitialized)
	}
	// Every holder must answer and accept stage calls before Vault makes
	// keys that would exist nowhere else.
	a := Agree(ctx, c.Holders)
	if len(a.Errs) > 0 {
		return res, fmt.Errorf("every holder must be reachable to deal the shares: %s; nothing was changed, rerun when they are up", a.Unreachable())
	}
	for _, g := range a.Current {
		res.Generation = max(res.Generation, g)
	}
	res.Generation++
	if _, err := c.onAll(ctx, "check of stage rights (abort of nothing)", c.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Abort(ctx, res.Generation)
	}); err != nil {
		return res, fmt.Errorf("%w; nothing was changed: fix the holders' policy or certificates and rerun", err)
	}

	c.printf("initializing vault node %s: %d shares, threshold %d, generation %d", c.Node.Name, c.Plan.Shares, c.Plan.Threshold, res.Generation)
	out, err := vi.Init(ctx, vaultnode.InitRequest{Shares: c.Plan.Shares, Threshold: c.Plan.Threshold, RootTokenPGPKey: c.RootTokenPGPKey})
	if err != nil {
		return res, fmt.Errorf("%w: nothing was dealt; fix it and rerun 'unsealer init'", err)
	}
	res.RootToken, res.PGPEncrypted = out.RootToken, c.RootTokenPGPKey != ""
	all := make([]shares.Share, len(out.Keys))
	for i, k := range out.Keys {
		all[i] = shares.Share{Index: uint8(i + 1), Value: k}
	}
	defer shares.ZeroShares(all)
	lost := func(err error) (InitResult, error) {
		return res, fmt.Errorf("%w: vault node %s is initialized but its unseal keys were not dealt and are gone; it holds no data yet: stop Vault, wipe its storage, then rerun 'unsealer init'", err, c.Node.Name)
	}
	if err := c.after(StepInitVault); err != nil {
		return lost(err)
	}
	if bad, err := shares.CheckConsistent(all, c.Plan.Threshold); err != nil {
		return lost(fmt.Errorf("vault's keys are inconsistent (indices %v): %w", bad, err))
	}
	res.Manifest = shares.NewManifest(res.Generation, c.Plan.Threshold, all)

	// Phase one: stage everywhere, then read it back through the release
	// path (the node is initialized and sealed, so the holders' policy
	// allows it), which also proves each holder can release it.
	if err := c.stageAll(ctx, c.Holders, c.Plan, all, res.Manifest, ""); err != nil {
		_ = c.abortAll(context.WithoutCancel(ctx), c.Holders, res.Generation)
		return lost(err)
	}
	c.printf("staged generation %d on %d holders", res.Generation, len(c.Holders))
	if err := c.after(StepInitStage); err != nil {
		return lost(err)
	}
	if err := c.checkStaged(ctx, all, res.Generation); err != nil {
		_ = c.abortAll(context.WithoutCancel(ctx), c.Holders, res.Generation)
		return lost(err)
	}
	if err := c.after(StepInitCheck); err != nil {
		return lost(err)
	}

	// Phase two: commit. From here the holders hold the only copy.
	if _, err := c.onAll(ctx, fmt.Sprintf("commit of generation %d", res.Generation), c.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Commit(ctx, res.Generation)
	}); err != nil {
		return res, fmt.Errorf("%w: the holders that did not commit still have it staged and can release it; rerun 'unsealer init --commit %d' when they are up", err, res.Generation)
	}
	res.Committed = true
	c.printf("committed generation %d on every holder", res.Generation)
	if err := c.after(StepInitCmt); err != nil {
		return res, err
	}
	return res, c.verifyInit(ctx, res.Manifest)
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
// 'unsealer rekey --recover' tests it and commits it instead.
func AbortInit(ctx context.Context, node Node, hs []HolderRef, gen uint64, o Options) error {
	o.defaults()
	st, err := node.Vault.SealStatus(ctx)
	if err != nil {
		return fmt.Errorf("vault node %s: %w: cannot confirm that it is not initialized; nothing was dropped: start it and rerun", node.Name, err)
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
	n, err := c.Options.UnsealFromHolders(ctx, []Node{c.Node}, c.Holders)
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
