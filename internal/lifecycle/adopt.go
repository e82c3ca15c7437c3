package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Adoption: an existing, initialized Vault whose unseal key the operators
// hold (paper shares) and holders that hold nothing yet. Rekey treats the
// paper shares as the committed generation 0: it rekeys Vault with
// verification to the plan and deals generation 1, as any rekey deals N+1.
// There is no manifest of the paper shares, so they are checked for what
// can be checked (format and length, distinct, Vault's own threshold) and
// Vault judges them; the holders' shares never take part (they hold none,
// and FromHolders refuses generation 0).

// ErrNoPaperShares is returned by FromHolders for generation 0: the
// holders hold nothing, so adopting needs the operators' shares.
var ErrNoPaperShares = errors.New("the holders hold no generation: adopting an existing vault needs a threshold of its current shares from the operators: give them with --old-shares-file (repeatable) or --old-shares-prompt")

// Empty reports whether every holder answered and holds nothing, neither
// committed nor staged: the one state in which Rekey adopts.
func (h Holdings) Empty() bool {
	if len(h.Errs) > 0 || len(h.Staged) > 0 || len(h.Current) == 0 {
		return false
	}
	_, hi := h.Range()
	return hi == 0
}

// Generations names each holder's committed generation (and staged one, if
// any), sorted by holder: "a: 1, b: none (staged 1)".
func (h Holdings) Generations() string {
	ids := make([]string, 0, len(h.Current))
	for id := range h.Current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		g := "none"
		if h.Current[id] != 0 {
			g = fmt.Sprintf("generation %d", h.Current[id])
		}
		if s := h.Staged[id]; s != 0 {
			g += fmt.Sprintf(" (staged %d)", s)
		}
		parts = append(parts, id+": "+g)
	}
	if u := h.Unreachable(); u != "" {
		parts = append(parts, "unreachable: "+u)
	}
	return strings.Join(parts, ", ")
}

// genWords names generation g for a person; 0 is the key Vault had before
// keyshare dealt one (the operators' shares of an adopted Vault).
func genWords(g uint64) string {
	if g == 0 {
		return "the key from before keyshare (the operators' shares)"
	}
	return fmt.Sprintf("generation %d", g)
}

// paperManifest stands for the operators' shares of an adopted Vault:
// generation 0, Vault's own threshold, no digests (nobody recorded them).
func paperManifest(st vaultnode.Status) shares.Manifest {
	return shares.Manifest{Threshold: st.T}
}

// checkPaper checks what can be checked of the operators' shares without a
// manifest: a threshold of them, distinct (ParseShare checked the length).
// Vault judges the rest.
func checkPaper(old []shares.Share, threshold int) error {
	if threshold <= 0 {
		return fmt.Errorf("vault reports no threshold for its current shares; nothing was changed")
	}
	if len(old) != threshold {
		return fmt.Errorf("%d current shares given, vault's threshold is %d; nothing was changed", len(old), threshold)
	}
	for _, s := range old {
		if len(s.Value) != shares.ShareLen {
			return fmt.Errorf("current share %d: %w: nothing was changed", s.Index, shares.ErrShareLength)
		}
	}
	return shares.CheckDistinct(old)
}

// checkAdopt is Rekey's start when every holder is empty: the node must
// be initialized and unsealed; its threshold stands for the manifest of
// generation 0.
func (r *rekeyRun) checkAdopt(ctx context.Context) error {
	st, err := r.vr.SealStatus(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("vault node %s: %w: adopting needs it initialized and unsealed; nothing was changed", r.Node.Name, err)
	case !st.Initialized:
		return fmt.Errorf("vault node %s is not initialized and every holder is empty: nothing to adopt; run 'unsealer init'", r.Node.Name)
	case st.Sealed:
		return fmt.Errorf("vault node %s is initialized but sealed, and every holder is empty: nothing was changed. If an 'unsealer init' was interrupted, run 'unsealer rekey --recover'; if it is an existing vault, unseal it with its current shares ('unsealer unseal --file F...') and rerun the adoption", r.Node.Name)
	case st.T <= 0:
		return fmt.Errorf("vault node %s reports no threshold in its seal status: nothing was changed", r.Node.Name)
	}
	r.current = paperManifest(st)
	r.printf("every holder is empty and vault node %s is initialized: adopting it (a threshold of %d of its current shares from the operators; new generation 1)", r.Node.Name, st.T)
	return nil
}

// paperRejected handles Vault refusing the operators' shares in an
// adoption: they do not open its root key. Nothing was staged; the rekey
// is cancelled.
func (r *rekeyRun) paperRejected(ctx context.Context, err error) error {
	return r.cancel(ctx, fmt.Errorf("vault node %s rejected the current shares given (%w): they are not a threshold of the key it uses (another vault's, an older rekey's, or a typo)", r.Node.Name, err))
}

// recoverAdopt settles an interrupted adoption: nothing committed anywhere,
// generation gen staged on some holders, and the node (initialized)
// unsealed. The proofs are those of a rekey, with the operators' shares as
// the committed generation 0: Vault still waiting for the verification of
// a rekey; an unseal of a sealed node with gen; a test rekey with the
// operators' shares (c.Old).
func (c RecoverConfig) recoverAdopt(ctx context.Context, h Holdings, gen uint64) (string, error) {
	vr := c.Node.Vault
	staged := h.StagedHolders(gen)
	rk, rkErr := vr.RekeyStatus(ctx)
	if rkErr == nil && rk.Started {
		if provesOld(h, rk, gen) {
			return c.dropStaged(ctx, vr, rk, staged, gen-1)
		}
		if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
			return "", fmt.Errorf("%w: vault node %s has rekey %s in progress, which says nothing about generation %d staged on %v: kept it; rerun 'unsealer rekey --recover'", err, c.Node.Name, rk.Nonce, gen, staged)
		}
		c.printf("cancelled rekey %s on %s: it had made no new keys, so it is not the one that staged generation %d", rk.Nonce, c.Node.Name, gen)
	}
	for _, n := range c.Nodes {
		st, err := n.Vault.SealStatus(ctx)
		if err == nil && st.Initialized && st.Sealed {
			return c.testStaged(ctx, n, h, gen)
		}
	}
	st, err := vr.SealStatus(ctx)
	if c.Old != nil && rkErr == nil && err == nil {
		return c.probe(ctx, vr, paperManifest(st), st.N, h, staged, gen)
	}
	return "", fmt.Errorf("%w: holders %v have generation %d staged by an interrupted adoption, nothing is committed, and vault node %s is unsealed with no rekey waiting for verification: that rekey either completed (vault uses %d) or was lost (vault uses the operators' shares): rerun 'unsealer rekey --recover -c <operator config> --old-shares-file F...' with a threshold of the operators' shares and VAULT_TOKEN set (a test rekey, cancelled afterwards), or restart one vault node (it comes back sealed) and rerun 'unsealer rekey --recover'; never abort generation %d by hand",
		ErrUndecided, staged, gen, c.Node.Name, gen, gen)
}

// testStaged unseals the sealed node n with generation gen, staged and
// nothing committed: if it unseals, gen is committed; if Vault rejects it,
// Vault uses the key from before (the operators' shares of an adopted
// Vault) and gen is dropped.
func (c RecoverConfig) testStaged(ctx context.Context, n Node, h Holdings, gen uint64) (string, error) {
	err := c.unsealStaged(ctx, n, gen)
	switch {
	case err == nil:
		return c.commitStaged(ctx, gen, h.StagedHolders(gen), fmt.Sprintf("vault uses generation %d (it unsealed %s)", gen, n.Name))
	case !errors.Is(err, ErrRejected):
		return "", err
	}
	if aerr := c.abortAll(ctx, c.Holders, gen); aerr != nil {
		return "", fmt.Errorf("vault node %s rejected staged generation %d, so vault uses the operators' shares, but %w: rerun 'unsealer rekey --recover' when the holders are up", n.Name, gen, aerr)
	}
	return fmt.Sprintf("vault node %s rejected staged generation %d, so vault still uses the operators' shares: dropped generation %d (from %v); unseal %s with them ('unsealer unseal --file F...') and rerun the adoption ('unsealer rekey --old-shares-file F...')",
		n.Name, gen, gen, h.StagedHolders(gen), n.Name), nil
}
