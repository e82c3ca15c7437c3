package lifecycle

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// RekeyState is what `unsealer rekey --status` shows.
type RekeyState struct {
	Node string `json:"node"`
	// VaultError is set when the node's rekey status could not be read
	// (it is sealed, down, or needs a token).
	VaultError string `json:"vault_error,omitempty"`
	Started    bool   `json:"started"`
	Nonce      string `json:"nonce,omitempty"`
	Progress   int    `json:"progress"`
	Required   int    `json:"required"`
	Verifying  bool   `json:"verifying"`
	// Generations is each holder's committed generation, Staged its staged
	// one (holders with none are left out).
	Generations map[string]uint64 `json:"holder_generations"`
	Staged      map[string]uint64 `json:"holder_staged,omitempty"`
	Unreachable string            `json:"unreachable,omitempty"`
	// Settle says what needs settling and the one command that does it;
	// empty when nothing does.
	Settle string `json:"settle,omitempty"`
}

// ReadRekeyState reads Vault's rekey progress and every holder's committed
// and staged generations, and says what needs settling. It changes
// nothing.
func ReadRekeyState(ctx context.Context, c RecoverConfig) RekeyState {
	s := RekeyState{Node: c.Node.Name}
	rk, rkErr := c.Node.Vault.RekeyStatus(ctx)
	if rkErr != nil {
		s.VaultError = rkErr.Error()
	} else {
		s.Started, s.Nonce, s.Progress, s.Required, s.Verifying = rk.Started, rk.Nonce, rk.Progress, rk.Required, rk.VerificationNonce != ""
	}
	h := ReadHoldings(ctx, c.Holders)
	s.Generations, s.Unreachable = h.Current, h.Unreachable()
	if len(h.Staged) > 0 {
		s.Staged = h.Staged
	}
	s.Settle = settleAdvice(c.Node.Name, h, rk, rkErr)
	return s
}

// settleAdvice says what needs settling, with the one command that does it.
func settleAdvice(node string, h Holdings, rk vaultnode.RekeyStatus, rkErr error) string {
	lo, hi := h.Range()
	gens := h.StagedGens()
	switch {
	case len(h.Current) == 0:
		return "no holder answered: start the holders and run 'unsealer rekey --status' again"
	case lo < hi:
		return fmt.Sprintf("the holders hold generations %d and %d: a commit of generation %d was under way, so vault uses it: run 'unsealer rekey --recover', which commits it on every holder", lo, hi, hi)
	case len(h.Errs) > 0:
		return fmt.Sprintf("some holders could not be read (%s): start them, and run 'unsealer rekey --status' again", h.Unreachable())
	case len(gens) > 0 && hi == 0:
		return fmt.Sprintf("generation %d is staged on %v by an interrupted init or adoption, nothing is committed, and it may be vault's only key: run 'unsealer rekey --recover' (for an adoption with no node sealed, add --old-shares-file F... with the operators' shares), which tests it and commits or drops it; never abort it by hand", gens[0], h.StagedHolders(gens[0]))
	case len(gens) > 0 && rkErr == nil && rk.Started && provesOld(h, rk, hi+1):
		return fmt.Sprintf("generation %d is staged on %v and vault node %s still waits for the verification of rekey %s, so it uses generation %d: run 'unsealer rekey --recover', which cancels that rekey and drops generation %d",
			gens[0], h.StagedHolders(gens[0]), node, rk.Nonce, hi, gens[0])
	case len(gens) > 0:
		return fmt.Sprintf("generation %d is staged on %v and vault may use it (the rekey that staged it completed its verification or was lost): run 'unsealer rekey --recover', which tests it and commits or drops it; never abort it by hand",
			gens[0], h.StagedHolders(gens[0]))
	case rkErr == nil && rk.Started:
		return fmt.Sprintf("vault node %s has rekey %s in progress and no holder has anything staged, so vault uses generation %d: run 'unsealer rekey --abort', which cancels it", node, rk.Nonce, hi)
	case hi == 0 && rkErr == nil:
		// Vault answers its rekey status only once initialized.
		return fmt.Sprintf("every holder is empty but vault node %s is initialized: keyshare holds no key of it yet, so nothing unseals it; adopt it with 'unsealer rekey --old-shares-file F...' (the operators' current unseal keys; README, Adopting an existing Vault)", node)
	case hi == 0:
		return fmt.Sprintf("every holder is empty and vault node %s is sealed, uninitialized or down: run 'unsealer status', which says which and whether to init or adopt it", node)
	}
	return ""
}

// Print writes the state for a person, with what to do next.
func (s RekeyState) Print(w io.Writer) {
	switch {
	case s.VaultError != "":
		fmt.Fprintf(w, "vault %s: rekey status unknown: %s\n", s.Node, s.VaultError)
	case !s.Started:
		fmt.Fprintf(w, "vault %s: no rekey in progress\n", s.Node)
	case s.Verifying:
		fmt.Fprintf(w, "vault %s: rekey %s waiting for verification of the new shares\n", s.Node, s.Nonce)
	default:
		fmt.Fprintf(w, "vault %s: rekey %s in progress, %d/%d current shares given\n", s.Node, s.Nonce, s.Progress, s.Required)
	}
	ids := make([]string, 0, len(s.Generations))
	for id := range s.Generations {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		switch {
		case s.Staged[id] != 0:
			fmt.Fprintf(w, "holder %s: generation %d (staged: %d)\n", id, s.Generations[id], s.Staged[id])
		default:
			fmt.Fprintf(w, "holder %s: generation %d (nothing staged)\n", id, s.Generations[id])
		}
	}
	if s.Unreachable != "" {
		fmt.Fprintf(w, "unreachable: %s\n", s.Unreachable)
	}
	if s.Settle != "" {
		fmt.Fprintf(w, "needs settling: %s\n", s.Settle)
	} else {
		fmt.Fprintln(w, "nothing to settle")
	}
}

// AbortRekey cancels Vault's rekey in progress, with its nonce. It drops a
// staged generation only on proof that Vault still uses the committed one
// (provesOld: Vault still waits for the verification of the rekey); with
// a staged generation and no such proof it keeps it and points to
// --recover, which finds out.
func AbortRekey(ctx context.Context, c RecoverConfig) (string, error) {
	c.defaults()
	vr := c.Node.Vault
	h := ReadHoldings(ctx, c.Holders)
	lo, hi := h.Range()
	switch {
	case len(h.Current) == 0:
		return "", fmt.Errorf("no holder answered (%s): start the holders and rerun 'unsealer rekey --abort'", h.Unreachable())
	case lo < hi:
		return "", fmt.Errorf("the holders hold different generations (%s): a commit was under way, so vault uses generation %d; nothing was changed: run 'unsealer rekey --recover', not --abort", h.Generations(), hi)
	case len(h.Errs) > 0:
		return "", fmt.Errorf("cannot read every holder (%s): nothing was changed; start them and rerun 'unsealer rekey --abort'", h.Unreachable())
	}
	gens := h.StagedGens()
	rk, err := vr.RekeyStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: cannot read the rekey in progress; nothing was changed: run 'unsealer rekey --recover', which tests the generations", err)
	}
	if !rk.Started {
		if len(gens) > 0 {
			return "", fmt.Errorf("vault node %s has no rekey in progress, so it may already use generation %d, which holders %v have staged: nothing was changed; run 'unsealer rekey --recover', not --abort", c.Node.Name, gens[0], h.StagedHolders(gens[0]))
		}
		return fmt.Sprintf("nothing to abort: vault node %s has no rekey in progress and no holder has a generation staged; %s stays in force", c.Node.Name, genWords(hi)), nil
	}
	if len(gens) > 0 && !provesOld(h, rk, hi+1) {
		if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
			return "", fmt.Errorf("%w: nothing was changed: run 'unsealer rekey --recover'", err)
		}
		return "", fmt.Errorf("cancelled rekey %s on %s (it had made no new keys), but holders %v have generation %d staged by an earlier rekey that may have completed: kept it; run 'unsealer rekey --recover', which tests it",
			rk.Nonce, c.Node.Name, h.StagedHolders(gens[0]), gens[0])
	}
	if len(gens) > 0 {
		return c.dropStaged(ctx, vr, rk, h.StagedHolders(hi+1), hi)
	}
	if err := vr.RekeyCancel(ctx, rk.Nonce); err != nil {
		return "", fmt.Errorf("%w: rekey %s is still in progress on %s; vault uses generation %d: rerun 'unsealer rekey --abort'", err, rk.Nonce, c.Node.Name, hi)
	}
	return fmt.Sprintf("cancelled rekey %s on %s; no holder had anything staged; %s stays in force", rk.Nonce, c.Node.Name, genWords(hi)), nil
}
