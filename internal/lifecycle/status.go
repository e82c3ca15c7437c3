package lifecycle

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// RekeyState is what `unsealer rekey --status` shows.
type RekeyState struct {
	Node string `json:"node"`
	// VaultError is set when the node's rekey status could not be read
	// (it is sealed, down, or needs a token).
	VaultError  string            `json:"vault_error,omitempty"`
	Started     bool              `json:"started"`
	Nonce       string            `json:"nonce,omitempty"`
	Progress    int               `json:"progress"`
	Required    int               `json:"required"`
	Verifying   bool              `json:"verifying"`
	Generations map[string]uint64 `json:"holder_generations"`
	Unreachable string            `json:"unreachable,omitempty"`
}

// ReadRekeyState reads Vault's rekey progress and the holders' current
// generations. It changes nothing and releases nothing.
func ReadRekeyState(ctx context.Context, c RecoverConfig) RekeyState {
	s := RekeyState{Node: c.Node.Name}
	if vr, ok := c.Node.Vault.(Rekeyer); ok {
		st, err := vr.RekeyStatus(ctx)
		if err != nil {
			s.VaultError = err.Error()
		} else {
			s.Started, s.Nonce, s.Progress, s.Required, s.Verifying = st.Started, st.Nonce, st.Progress, st.Required, st.VerificationNonce != ""
		}
	}
	a := Agree(ctx, c.Holders)
	s.Generations, s.Unreachable = a.Current, a.Unreachable()
	return s
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
	lo, hi := ^uint64(0), uint64(0)
	for id, g := range s.Generations {
		ids = append(ids, id)
		lo, hi = min(lo, g), max(hi, g)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "holder %s: generation %d\n", id, s.Generations[id])
	}
	if s.Unreachable != "" {
		fmt.Fprintf(w, "unreachable: %s\n", s.Unreachable)
	}
	if s.Started || lo < hi {
		fmt.Fprintln(w, "an interrupted rekey needs settling: run 'unsealer rekey --recover'")
	}
}

// AbortRekey cancels Vault's rekey and drops the staged generation on the
// holders, but only while Vault still shows the rekey in progress: that
// proves its verification did not complete, so Vault uses the old
// generation. Otherwise it refuses and points to --recover, which finds out.
func AbortRekey(ctx context.Context, c RecoverConfig) (string, error) {
	c.defaults()
	vr, ok := c.Node.Vault.(Rekeyer)
	if !ok {
		return "", fmt.Errorf("vault node %s cannot be rekeyed through this client", c.Node.Name)
	}
	a := Agree(ctx, c.Holders)
	lo, hi := ^uint64(0), uint64(0)
	for _, g := range a.Current {
		lo, hi = min(lo, g), max(hi, g)
	}
	if hi == 0 || lo < hi {
		return "", fmt.Errorf("the holders hold generations %v: a commit was under way, so vault uses the newer one; run 'unsealer rekey --recover', not --abort", a.Current)
	}
	st, err := vr.RekeyStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: cannot confirm that the rekey is still in progress; run 'unsealer rekey --recover', which tests on a sealed node", err)
	}
	if !st.Started {
		staged, err := c.staged(ctx, hi+1)
		if err != nil {
			return "", err
		}
		if len(staged) > 0 {
			return "", fmt.Errorf("vault %s has no rekey in progress, so it may already use generation %d, which holders %v have staged: run 'unsealer rekey --recover', not --abort", c.Node.Name, hi+1, staged)
		}
		return "nothing to abort: no rekey in progress and nothing staged", nil
	}
	if err := vr.RekeyCancel(ctx); err != nil {
		return "", err
	}
	if err := c.abortAll(ctx, c.Holders, hi+1); err != nil {
		return "", err
	}
	return fmt.Sprintf("cancelled the rekey on %s and dropped staged generation %d; generation %d stays in force", c.Node.Name, hi+1, hi), nil
}
