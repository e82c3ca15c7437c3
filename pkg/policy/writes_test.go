package policy

import (
	"errors"
	"testing"
)

// TestDecideWrite: stage, commit and abort only in the Vault state that
// needs them, as the holder itself sees it. One valid request per op and
// one small change per case.
func TestDecideWrite(t *testing.T) {
	rekeying := NodeView{Name: "vault-1", Initialized: true, RekeyStarted: true, RekeyNonce: "n1"}
	idle := NodeView{Name: "vault-1", Initialized: true}
	sealed := NodeView{Name: "vault-2", Initialized: true, Sealed: true}
	down := NodeView{Name: "vault-3", Err: errors.New("connection refused")}
	type tc struct {
		name   string
		req    WriteRequest
		rule   string // for allowed
		reason Reason // "" for allowed
	}
	held := HeldState{Current: 1}
	staged := HeldState{Current: 1, Staged: 2, StagedNonce: "n1"}
	run := func(t *testing.T, tc tc) {
		rule, err := DecideWrite(tc.req)
		if tc.reason == "" {
			if err != nil || rule != tc.rule {
				t.Fatalf("rule %q, err %v; want rule %q", rule, err, tc.rule)
			}
			return
		}
		if !isReason(err, tc.reason) {
			t.Fatalf("err = %v (rule %q), want %s", err, rule, tc.reason)
		}
	}
	for _, c := range []tc{
		// Stage.
		{name: "ok/stage-first-generation", rule: "first-generation", req: WriteRequest{Op: OpStage, Generation: 1}},
		{name: "ok/stage-during-rekey", rule: "rekey:vault-1", req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n1", Held: held, Nodes: []NodeView{down, sealed, rekeying}}},
		{name: "fail/stage-no-rekey-vault-unsealed", reason: ReasonTargetNotRekeying, req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n1", Held: held, Nodes: []NodeView{idle}}},
		{name: "fail/stage-without-nonce", reason: ReasonWriteRefused, req: WriteRequest{Op: OpStage, Generation: 2, Held: held, Nodes: []NodeView{rekeying}}},
		{name: "fail/stage-other-nonce", reason: ReasonTargetNotRekeying, req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n2", Held: held, Nodes: []NodeView{rekeying}}},
		{name: "fail/stage-vault-unreachable", reason: ReasonTargetNotRekeying, req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n1", Held: held, Nodes: []NodeView{down}}},
		{name: "fail/stage-sealed-node-claims-rekey", reason: ReasonTargetNotRekeying, req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n1", Held: held,
			Nodes: []NodeView{{Name: "vault-1", Initialized: true, Sealed: true, RekeyStarted: true, RekeyNonce: "n1"}}}},
		{name: "ok/stage-again-same-rekey", rule: "rekey:vault-1", req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n1", Held: staged, Nodes: []NodeView{rekeying}}},
		{name: "fail/stage-over-unsettled-staged", reason: ReasonWriteRefused, req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n2", Held: staged,
			Nodes: []NodeView{{Name: "vault-1", Initialized: true, RekeyStarted: true, RekeyNonce: "n2"}}}},
		{name: "ok/stage-over-staged-after-other-proven", rule: "rekey:vault-1", req: WriteRequest{Op: OpStage, Generation: 2, RekeyNonce: "n2",
			Held: HeldState{Current: 1, Staged: 2, StagedNonce: "n1", LastProof: 1}, Nodes: []NodeView{{Name: "vault-1", Initialized: true, RekeyStarted: true, RekeyNonce: "n2"}}}},
		// Commit.
		{name: "ok/commit-first-generation", rule: "first-generation", req: WriteRequest{Op: OpCommit, Generation: 1, Held: HeldState{Staged: 1}}},
		{name: "ok/commit-current-again", rule: "already-current", req: WriteRequest{Op: OpCommit, Generation: 1, Held: held}},
		{name: "ok/commit-after-rekey-ended", rule: "rekey-ended:vault-1", req: WriteRequest{Op: OpCommit, Generation: 2, Held: staged, Nodes: []NodeView{sealed, idle}}},
		{name: "ok/commit-proven", rule: "proven", req: WriteRequest{Op: OpCommit, Generation: 2, Held: HeldState{Current: 1, Staged: 2, LastProof: 2}}},
		{name: "fail/commit-rekey-still-in-progress", reason: ReasonWriteRefused, req: WriteRequest{Op: OpCommit, Generation: 2, Held: staged, Nodes: []NodeView{rekeying}}},
		{name: "fail/commit-vault-all-sealed", reason: ReasonWriteRefused, req: WriteRequest{Op: OpCommit, Generation: 2, Held: staged, Nodes: []NodeView{sealed, down}}},
		{name: "fail/commit-not-staged", reason: ReasonGenerationMismatch, req: WriteRequest{Op: OpCommit, Generation: 3, Held: staged, Nodes: []NodeView{idle}}},
		{name: "fail/commit-unproven-without-nonce", reason: ReasonWriteRefused, req: WriteRequest{Op: OpCommit, Generation: 2, Held: HeldState{Current: 1, Staged: 2}, Nodes: []NodeView{idle}}},
		// Abort.
		{name: "ok/abort-nothing-staged", rule: "nothing-staged", req: WriteRequest{Op: OpAbort, Generation: 2, Held: held}},
		{name: "ok/abort-first-generation-vault-uninitialized", rule: "vault-uninitialized", req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1},
			Nodes: []NodeView{{Name: "vault-1"}, {Name: "vault-2"}}}},
		{name: "ok/abort-first-generation-adoption-rekey-in-progress", rule: "rekey-in-progress:vault-1", req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1, StagedNonce: "n1"},
			Nodes: []NodeView{rekeying}}},
		// Before: a holder with no committed generation dropped its staged
		// one for any authorized peer ("first-generation"), although after
		// Vault's init (or an adoption's verify) it may be Vault's only key.
		{name: "fail/abort-first-generation-vault-initialized", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1},
			Nodes: []NodeView{{Name: "vault-1", Initialized: true, Sealed: true}}}},
		{name: "fail/abort-first-generation-adoption-verified", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1, StagedNonce: "n1"},
			Nodes: []NodeView{idle}}},
		{name: "fail/abort-first-generation-unchecked", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1},
			Nodes: []NodeView{{Name: "vault-1", Err: errors.New("connection refused")}}}},
		{name: "fail/abort-first-generation-no-node-checked", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1}}},
		{name: "ok/abort-rekey-in-progress", rule: "rekey-in-progress:vault-1", req: WriteRequest{Op: OpAbort, Generation: 2, Held: staged, Nodes: []NodeView{rekeying}}},
		{name: "ok/abort-other-generation-proven", rule: "generation-1-proven", req: WriteRequest{Op: OpAbort, Generation: 2, Held: HeldState{Current: 1, Staged: 2, StagedNonce: "n1", LastProof: 1}}},
		{name: "fail/abort-fate-unknown", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 2, Held: staged, Nodes: []NodeView{idle, sealed}}},
		{name: "fail/abort-staged-proven", reason: ReasonWriteRefused, req: WriteRequest{Op: OpAbort, Generation: 2, Held: HeldState{Current: 1, Staged: 2, StagedNonce: "n1", LastProof: 2}, Nodes: []NodeView{idle}}},
		{name: "fail/abort-wrong-generation", reason: ReasonGenerationMismatch, req: WriteRequest{Op: OpAbort, Generation: 3, Held: staged, Nodes: []NodeView{rekeying}}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestNeedsNodes: the holder asks Vault only when the rule may need it.
func TestNeedsNodes(t *testing.T) {
	staged := HeldState{Current: 1, Staged: 2, StagedNonce: "n1"}
	for _, c := range []struct {
		req  WriteRequest
		want bool
	}{
		{WriteRequest{Op: OpStage, Generation: 1}, false},
		{WriteRequest{Op: OpStage, Generation: 2, Held: HeldState{Current: 1}}, true},
		{WriteRequest{Op: OpCommit, Generation: 2, Held: staged}, true},
		{WriteRequest{Op: OpCommit, Generation: 2, Held: HeldState{Current: 1, Staged: 2, StagedNonce: "n1", LastProof: 2}}, false},
		{WriteRequest{Op: OpAbort, Generation: 2, Held: staged}, true},
		{WriteRequest{Op: OpAbort, Generation: 2, Held: HeldState{Current: 1, Staged: 2, StagedNonce: "n1", LastProof: 1}}, false},
		{WriteRequest{Op: OpAbort, Generation: 1, Held: HeldState{Staged: 1}}, true}, // a first generation: is Vault initialized?
		{WriteRequest{Op: OpAbort, Generation: 1}, false},                            // nothing staged
	} {
		if got := NeedsNodes(c.req); got != c.want {
			t.Errorf("NeedsNodes(%+v) = %v, want %v", c.req, got, c.want)
		}
	}
}
