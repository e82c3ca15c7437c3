package policy

import (
	"fmt"
	"strings"
)

// The store writes a peer can ask a holder for. Each can destroy the key if
// it comes at the wrong time, so each is allowed only in the Vault state
// that needs it, as the holder itself sees it (DESIGN.md, "Trust rules"):
//
//	stage   the holder holds no committed generation (a first init, or
//	        adopting an existing Vault), or a Vault node it checks shows a
//	        rekey in progress with the nonce the request names and the
//	        staged generation it would replace, if any, is of that same
//	        rekey or another generation has unsealed a node since
//	commit  a first init; or the holder has seen the staged generation
//	        unseal a node; or the rekey it was staged under is no longer
//	        in progress on an unsealed node (Vault finished or dropped it)
//	abort   the rekey it was staged under is still in progress (Vault
//	        cannot use it yet); or the holder has seen another generation
//	        unseal a node since it was staged; or, with no committed
//	        generation (an init or an adoption), every Vault node it
//	        checks is still uninitialized (an init that never reached
//	        Vault): once Vault is initialized, a staged first generation
//	        may be its only key
//
// A commit never deletes the generation it replaces (pkg/shares keeps it
// until a newer one has unsealed a node), so a commit allowed too early
// costs one wasted unseal attempt, never the key. An abort is the one write
// that deletes, so its rule is the strictest: a staged generation whose
// fate is unknown is never dropped.
const (
	OpStage  = "stage"
	OpCommit = "commit"
	OpAbort  = "abort"
)

// ReasonWriteRefused: a stage, commit or abort was asked in a Vault state
// that does not need it, as the holder sees it.
const ReasonWriteRefused Reason = "write_refused"

// NodeView is the holder's own look at one Vault node, over its own TLS
// connection, for a store write.
type NodeView struct {
	Name        string
	Err         error // the check failed
	Initialized bool
	Sealed      bool
	// RekeyStarted and RekeyNonce are the node's rekey state; read only
	// when the node is unsealed.
	RekeyStarted bool
	RekeyNonce   string
}

func (v NodeView) rekeying(nonce string) bool {
	return v.Err == nil && v.Initialized && !v.Sealed && v.RekeyStarted && nonce != "" && v.RekeyNonce == nonce
}

func (v NodeView) String() string {
	switch {
	case v.Err != nil:
		return fmt.Sprintf("%s: not checked (%v)", v.Name, v.Err)
	case !v.Initialized:
		return v.Name + ": not initialized"
	case v.Sealed:
		return v.Name + ": sealed"
	case !v.RekeyStarted:
		return v.Name + ": unsealed, no rekey"
	}
	return fmt.Sprintf("%s: rekey with nonce %s", v.Name, v.RekeyNonce)
}

// HeldState is what the holder's store holds, for a write decision.
type HeldState struct {
	Current, Staged uint64
	// StagedNonce is the rekey nonce Staged was staged under.
	StagedNonce string
	// LastProof is the generation the holder has seen unseal a node since
	// the last stage or commit; 0 if none.
	LastProof uint64
}

// WriteRequest is one stage, commit or abort as the holder sees it.
type WriteRequest struct {
	Op         string
	PeerID     string
	Generation uint64
	// RekeyNonce is the nonce a stage names; empty for commit and abort,
	// which go by the nonce recorded at stage time.
	RekeyNonce string
	Held       HeldState
	// Nodes is the holder's own look at each Vault node it serves. It
	// may be empty when the rule needs no look (NeedsNodes).
	Nodes []NodeView
}

// NeedsNodes reports whether DecideWrite may need the holder's look at the
// Vault nodes for req, so that the holder asks Vault only then.
func NeedsNodes(req WriteRequest) bool {
	h := req.Held
	switch req.Op {
	case OpStage:
		return h.Current != 0
	case OpCommit:
		return h.Current != 0 && req.Generation == h.Staged && h.LastProof != h.Staged && h.StagedNonce != ""
	case OpAbort:
		if h.Staged == 0 || req.Generation != h.Staged {
			return false
		}
		if h.Current == 0 {
			return true
		}
		return (h.LastProof == 0 || h.LastProof == h.Staged) && h.StagedNonce != ""
	}
	return false
}

// DecideWrite returns the rule that allows req, or a *Denial. Identity and
// source are checked before, with Engine.Authorize.
func DecideWrite(req WriteRequest) (string, error) {
	h, g := req.Held, req.Generation
	switch req.Op {
	case OpStage:
		if h.Current == 0 {
			return "first-generation", nil
		}
		if req.RekeyNonce == "" {
			return "", Deny(ReasonWriteRefused, "holder holds generation %d: a stage of generation %d must name the nonce of the Vault rekey it comes from", h.Current, g)
		}
		// A stage replaces the staged generation: only one whose fate is
		// known may go (the same rekey staging again, or another
		// generation seen to unseal a node since).
		if h.Staged != 0 && req.RekeyNonce != h.StagedNonce && (h.LastProof == 0 || h.LastProof == h.Staged) {
			return "", Deny(ReasonWriteRefused, "generation %d is staged from an earlier rekey (nonce %q) and may be the one Vault uses: settle it first ('unsealer rekey --recover'); stage of generation %d refused",
				h.Staged, h.StagedNonce, g)
		}
		for _, v := range req.Nodes {
			if v.rekeying(req.RekeyNonce) {
				return "rekey:" + v.Name, nil
			}
		}
		return "", Deny(ReasonTargetNotRekeying, "holder holds generation %d and no Vault node shows a rekey with nonce %s in progress (%s): stage refused",
			h.Current, req.RekeyNonce, views(req.Nodes))
	case OpCommit:
		switch {
		case g != 0 && g == h.Current && h.Staged == 0:
			return "already-current", nil
		case g == 0 || g != h.Staged:
			return "", Deny(ReasonGenerationMismatch, "cannot commit generation %d: current is %d, staged is %d", g, h.Current, h.Staged)
		case h.Current == 0:
			return "first-generation", nil
		case h.LastProof == g:
			return "proven", nil
		case h.StagedNonce == "":
			return "", Deny(ReasonWriteRefused, "generation %d was staged without a rekey nonce and this holder has not seen it unseal a Vault node: commit refused", g)
		}
		var unsealed string
		for _, v := range req.Nodes {
			if v.rekeying(h.StagedNonce) {
				return "", Deny(ReasonWriteRefused, "the rekey that staged generation %d (nonce %s) is still in progress on %s: its verification has not completed, commit refused", g, h.StagedNonce, v.Name)
			}
			if v.Err == nil && v.Initialized && !v.Sealed && unsealed == "" {
				unsealed = v.Name
			}
		}
		if unsealed == "" {
			return "", Deny(ReasonWriteRefused, "no unsealed Vault node shows whether the rekey that staged generation %d (nonce %s) ended (%s): commit refused", g, h.StagedNonce, views(req.Nodes))
		}
		return "rekey-ended:" + unsealed, nil
	case OpAbort:
		switch {
		case h.Staged == 0:
			return "nothing-staged", nil
		case g != h.Staged:
			return "", Deny(ReasonGenerationMismatch, "cannot abort generation %d: staged is %d", g, h.Staged)
		case h.Current == 0:
			return abortFirst(req)
		case h.LastProof != 0 && h.LastProof != g:
			return fmt.Sprintf("generation-%d-proven", h.LastProof), nil
		}
		for _, v := range req.Nodes {
			if v.rekeying(h.StagedNonce) {
				return "rekey-in-progress:" + v.Name, nil
			}
		}
		return "", Deny(ReasonWriteRefused, "staged generation %d may be the one Vault uses: it is dropped only while its rekey (nonce %q) is still in progress, or after another generation has unsealed a Vault node (%s): abort refused",
			g, h.StagedNonce, views(req.Nodes))
	}
	return "", Deny(ReasonWriteRefused, "unknown store write %q", req.Op)
}

// abortFirst decides an abort of the staged generation of a holder that
// holds no committed one: a first init or an adoption. Its staged
// generation may be the only key of an initialized Vault (an init killed
// after Vault's init; an adoption killed after Vault's verify), so it goes
// only while its rekey is still in progress, or while every Vault node is
// seen uninitialized.
func abortFirst(req WriteRequest) (string, error) {
	h, g := req.Held, req.Generation
	uninitialized := len(req.Nodes) > 0
	for _, v := range req.Nodes {
		if v.rekeying(h.StagedNonce) {
			return "rekey-in-progress:" + v.Name, nil
		}
		if v.Err != nil || v.Initialized {
			uninitialized = false
		}
	}
	if uninitialized {
		return "vault-uninitialized", nil
	}
	return "", Deny(ReasonWriteRefused, "staged generation %d is this holder's first and may be the only key of an initialized Vault: it is dropped only while every Vault node is uninitialized, or while its rekey (nonce %q) is in progress (%s): abort refused; 'unsealer rekey --recover' settles it",
		g, h.StagedNonce, views(req.Nodes))
}

func views(vs []NodeView) string {
	if len(vs) == 0 {
		return "no Vault node checked"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, "; ")
}
