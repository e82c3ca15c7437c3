package lifecycle

import (
	"context"
	"fmt"

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
	// Node is the (active, unsealed) Vault node to rekey through; its
	// Vault must also be a Rekeyer.
	Node    Node
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
// kill at each step leaves and how 'unsealer rekey --recover' resolves it.
func Rekey(ctx context.Context, c RekeyConfig) (RekeyResult, error) {
	c.defaults()
	var res RekeyResult
	vr, ok := c.Node.Vault.(Rekeyer)
	if !ok {
		return res, fmt.Errorf("vault node %s cannot be rekeyed through this client", c.Node.Name)
	}
	if err := c.Plan.Validate(); err != nil {
		return res, fmt.Errorf("plan: %w", err)
	}
	a := Agree(ctx, c.Holders)
	if len(a.Errs) > 0 {
		return res, fmt.Errorf("every holder must be reachable to deal new shares: %s; nothing was changed, rerun when they are up", a.Unreachable())
	}
	m := a.Manifest
	if m.Generation == 0 || len(a.Agreeing) != len(c.Holders) {
		return res, fmt.Errorf("the holders do not all hold the same generation (%v): run 'unsealer rekey --recover' first", a.Current)
	}
	res.From, res.To = m.Generation, m.Generation+1
	if st, err := vr.RekeyStatus(ctx); err != nil {
		return res, fmt.Errorf("%w: rekey needs the node unsealed and active; nothing was changed", err)
	} else if st.Started {
		return res, fmt.Errorf("vault node %s has a rekey in progress already (nonce %s): run 'unsealer rekey --recover' or 'unsealer rekey --abort' first", c.Node.Name, st.Nonce)
	}

	st, err := vr.RekeyInit(ctx, c.Plan.Shares, c.Plan.Threshold)
	if err != nil {
		return res, fmt.Errorf("%w: nothing was changed", err)
	}
	c.printf("rekey started on %s (nonce %s): %d shares, threshold %d, with verification", c.Node.Name, st.Nonce, c.Plan.Shares, c.Plan.Threshold)
	if err := c.after(StepRekeyInit); err != nil {
		return res, err
	}
	cancel := func(err error) (RekeyResult, error) {
		ctx := context.WithoutCancel(ctx)
		if cerr := vr.RekeyCancel(ctx); cerr != nil {
			err = fmt.Errorf("%w (and cancelling the rekey failed: %v)", err, cerr)
		}
		if aerr := c.abortAll(ctx, c.Holders, res.To); aerr != nil {
			err = fmt.Errorf("%w (%v: run 'unsealer rekey --abort')", err, aerr)
		}
		return res, fmt.Errorf("%w: rekey cancelled; generation %d stays in force", err, res.From)
	}

	old, err := c.Old(ctx, m, c.Node.Name, st.Nonce)
	if err != nil {
		return cancel(fmt.Errorf("collecting the current shares of generation %d: %w", m.Generation, err))
	}
	defer shares.ZeroShares(old)
	if err := checkOld(old, m); err != nil {
		return cancel(err)
	}
	if err := c.after(StepCollect); err != nil {
		return res, err
	}

	var newKeys [][]byte
	for i, s := range old {
		up, err := vr.RekeyUpdate(ctx, st.Nonce, s.Value)
		if err != nil {
			return cancel(fmt.Errorf("rekey update with share %d of %d: %w", i+1, len(old), err))
		}
		if up.Complete {
			newKeys, st.VerificationNonce = up.Keys, up.VerificationNonce
			break
		}
		c.printf("  rekey progress %d/%d", up.Progress, up.Required)
	}
	newShares := make([]shares.Share, len(newKeys))
	for i, k := range newKeys {
		newShares[i] = shares.Share{Index: uint8(i + 1), Value: k}
	}
	defer shares.ZeroShares(newShares)
	if len(newShares) != c.Plan.Shares || st.VerificationNonce == "" {
		return cancel(fmt.Errorf("vault node %s did not complete the rekey with verification (%d keys)", c.Node.Name, len(newShares)))
	}
	if bad, err := shares.CheckConsistent(newShares, c.Plan.Threshold); err != nil {
		return cancel(fmt.Errorf("vault's new keys are inconsistent (indices %v): %w", bad, err))
	}
	res.Manifest = shares.NewManifest(res.To, c.Plan.Threshold, newShares)
	if err := c.after(StepRekeyUpdate); err != nil {
		return res, err
	}

	if err := c.stageAll(ctx, c.Holders, c.Plan, newShares, res.Manifest); err != nil {
		return cancel(err)
	}
	c.printf("staged generation %d on %d holders", res.To, len(c.Holders))
	if err := c.after(StepStage); err != nil {
		return res, err
	}

	// Vault switches keys when the last verify share lands. The holders
	// hold the new generation (staged) before that, and the old one
	// (current) until the commit below.
	for i, s := range newShares[:c.Plan.Threshold] {
		vs, err := vr.RekeyVerify(ctx, st.VerificationNonce, s.Value)
		if err != nil {
			return cancel(fmt.Errorf("rekey verify with new share %d: %w", i+1, err))
		}
		if vs.Complete {
			break
		}
		if i == c.Plan.Threshold-1 {
			return res, fmt.Errorf("vault node %s did not confirm the verification: run 'unsealer rekey --recover'", c.Node.Name)
		}
	}
	c.printf("vault node %s verified the new shares and uses generation %d now", c.Node.Name, res.To)
	if err := c.after(StepVerify); err != nil {
		return res, err
	}

	if _, err := c.onAll(ctx, fmt.Sprintf("commit of generation %d", res.To), c.Holders, func(ctx context.Context, h HolderRef) error {
		return h.Holder.Commit(ctx, res.To)
	}); err != nil {
		return res, fmt.Errorf("%w: vault uses generation %d, which those holders still have staged (they can release it): run 'unsealer rekey --recover' when they are up", err, res.To)
	}
	c.printf("committed generation %d on every holder", res.To)
	if err := c.after(StepCommit); err != nil {
		return res, err
	}
	if err := readBack(ctx, c.Holders, res.Manifest); err != nil {
		return res, fmt.Errorf("%w: run 'unsealer status'", err)
	}
	c.printf("every holder reports the same manifest (generation %d)", res.To)
	return res, nil
}

// checkOld refuses old shares that are not a threshold of m's generation.
func checkOld(old []shares.Share, m shares.Manifest) error {
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
		if !c.Manifest.Equal(m) {
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
	return func(ctx context.Context, m shares.Manifest, node, nonce string) ([]shares.Share, error) {
		return collectWith(hs, m, "the rekey of "+node, func(h Holder) ([]sharerpc.Share, error) {
			return h.ReleaseForRekey(ctx, node, m.Generation, nonce)
		})
	}
}
