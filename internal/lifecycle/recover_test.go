package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// staged checks every holder holds cur committed and gen staged.
func (w *world) staged(t *testing.T, cur, gen uint64) {
	t.Helper()
	for _, h := range w.mem {
		if c, s, _ := h.state(); c != cur || s != gen {
			t.Fatalf("holder %s: current %d staged %d, want %d and %d", h.id, c, s, cur, gen)
		}
	}
}

func (w *world) recoverConfig(probe bool) lifecycle.RecoverConfig {
	rc := lifecycle.RecoverConfig{Node: w.rnode, Holders: w.holders, Nodes: []lifecycle.Node{w.node}}
	if probe {
		rc.Old = lifecycle.FromHolders(w.holders)
	}
	return rc
}

// unsealsFromHolders restarts the node and unseals it from the
// holders' committed generation.
func (w *world) unsealsFromHolders(t *testing.T, ctx context.Context) {
	t.Helper()
	w.restart(t)
	if n, err := (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders); err != nil || n != 1 {
		t.Fatalf("unseal from the holders: %d, %v", n, err)
	}
}

// TestSecondRekeyAfterKillAfterVerify is finding 1 of issue 17: a rekey
// killed between Vault's verify and the holders' commit, then a plain
// rekey again (the operator's natural next step), then a Vault restart.
// The second rekey used to abort the staged generation Vault was using
// and so lose the key. It must refuse, keep generation 2 staged, and say
// how to settle; --recover then commits 2 and the node unseals.
func TestSecondRekeyAfterKillAfterVerify(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepVerify)
	w.staged(t, 1, 2)
	_, err := w.rekey(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "unsealer rekey --recover") || !strings.Contains(err.Error(), "generation 2 staged") {
		t.Fatalf("second rekey over a staged generation: %v; want a refusal naming --recover", err)
	}
	w.staged(t, 1, 2)
	if st := w.fake.LifecycleStats(); st.Rekeys != 1 || st.Cancels != 0 {
		t.Fatalf("vault stats %+v: the refused rekey touched vault", st)
	}
	w.restart(t)
	// Unsealing from the committed generation fails, and points to --recover.
	_, err = (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders)
	if !errors.Is(err, lifecycle.ErrRejected) || !strings.Contains(err.Error(), "unsealer rekey --recover") {
		t.Fatalf("unseal with generation 1 after the switch: %v; want a rejection pointing to --recover", err)
	}
	msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(false))
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	t.Logf("recover: %s", msg)
	w.settled(t, 2)
	w.unsealsFromHolders(t, ctx)
}

// TestRekeyRejectedCommitsStaged: when Vault rejects the holders' committed
// generation in rekey-update, it has moved on; a staged generation the
// start-up check could not see (hideStaged) is committed, never aborted.
func TestRekeyRejectedCommitsStaged(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepVerify)
	for _, h := range w.mem {
		h.set(func(h *memHolder) { h.hideStaged = true })
	}
	_, err := w.rekey(ctx, "")
	for _, h := range w.mem {
		h.set(func(h *memHolder) { h.hideStaged = false })
	}
	if err == nil || !strings.Contains(err.Error(), "committed staged generation 2") || strings.Contains(err.Error(), "aborted") {
		t.Fatalf("rekey against a vault on generation 2: %v", err)
	}
	w.settled(t, 2)
	if st := w.fake.LifecycleStats(); st.RekeyFailed != 1 {
		t.Fatalf("vault stats %+v", st)
	}
	if w.fake.RekeyNonce() != "" {
		t.Fatal("the rejected rekey was left in progress")
	}
	w.unsealsFromHolders(t, ctx)
}

// TestRekeyRejectedNothingStaged: Vault rejects the committed generation
// and nothing is staged (Vault was rekeyed outside keyshare): nothing
// changes on the holders, and the error says so.
func TestRekeyRejectedNothingStaged(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepVerify)
	for _, h := range w.mem {
		h.mu.Lock()
		delete(h.gens, h.staged)
		h.staged = 0
		h.mu.Unlock()
	}
	_, err := w.rekey(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "does not use generation 1") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rekey: %v", err)
	}
	w.settled(t, 1)
}

// TestRecoverProbe: with the node unsealed and no rekey in progress,
// --recover tells the generation with a test rekey of the committed
// shares, which it cancels.
func TestRecoverProbe(t *testing.T) {
	type tc struct {
		step lifecycle.Step
		want uint64
		says string
	}
	run := func(t *testing.T, c tc) {
		w, ctx := killedAt(t, c.step)
		msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(true))
		if err != nil {
			t.Fatalf("recover: %v", err)
		}
		if !strings.Contains(msg, c.says) {
			t.Fatalf("recover: %q, want it to say %q", msg, c.says)
		}
		w.settled(t, c.want)
		if w.fake.RekeyNonce() != "" {
			t.Fatal("recover left a rekey in progress")
		}
		w.unsealsFromHolders(t, ctx)
	}
	for _, c := range []tc{
		{step: lifecycle.StepCollect, want: 1, says: "cancelled the rekey in progress"},
		{step: lifecycle.StepRekeyUpdate, want: 1, says: "cancelled the rekey in progress"},
		{step: lifecycle.StepStage, want: 1, says: "waited for the verification"},
		{step: lifecycle.StepVerify, want: 2, says: "rejected a threshold of generation 1"},
		{step: lifecycle.StepCommit, want: 2, says: "nothing to recover"},
	} {
		t.Run("ok/"+string(c.step), func(t *testing.T) { run(t, c) })
	}
}

// TestRecoverProbeAccepts: a staged generation left with Vault still on the
// committed one and no rekey in progress (its rekey was cancelled): the
// test rekey's success proves the committed generation, and the staged
// one is dropped.
func TestRecoverProbeAccepts(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepStage)
	// Vault forgets the rekey (a restart would, but keep it unsealed).
	w.fake.AgeRekey(vaultfake.RekeyCancelDeadline)
	if err := w.vault.RekeyCancel(ctx, ""); err != nil {
		t.Fatal(err)
	}
	msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(true))
	if err != nil || !strings.Contains(msg, "accepted generation 1") {
		t.Fatalf("recover: %q, %v", msg, err)
	}
	w.settled(t, 1)
	w.unsealsFromHolders(t, ctx)
}

// TestRecoverUndecidedWords: with no way to test, recover changes nothing
// and names one command; for a single node it does not speak of standbys.
func TestRecoverUndecidedWords(t *testing.T) {
	w, ctx := killedAt(t, lifecycle.StepVerify)
	msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(false))
	if !errors.Is(err, lifecycle.ErrUndecided) {
		t.Fatalf("recover = %q, %v", msg, err)
	}
	for _, bad := range []string{"standby", "nothing to recover"} {
		if strings.Contains(err.Error(), bad) {
			t.Fatalf("single-node recover says %q: %v", bad, err)
		}
	}
	if !strings.Contains(err.Error(), "'unsealer rekey --recover -c <operator config>'") {
		t.Fatalf("no command given: %v", err)
	}
	w.staged(t, 1, 2)
}

// TestRekeyStatusShowsStaged: --status shows the staged generation and
// the command that settles it; "nothing to settle" only when that is true.
func TestRekeyStatusShowsStaged(t *testing.T) {
	w, ctx := unsealedWorld(t)
	rc := w.recoverConfig(false)
	var b bytes.Buffer
	lifecycle.ReadRekeyState(ctx, rc).Print(&b)
	if !strings.Contains(b.String(), "nothing to settle") {
		t.Fatalf("status of a settled cluster:\n%s", b.String())
	}
	if _, err := w.rekey(ctx, lifecycle.StepVerify); !errors.Is(err, errKilled) {
		t.Fatal(err)
	}
	st := lifecycle.ReadRekeyState(ctx, rc)
	b.Reset()
	st.Print(&b)
	out := b.String()
	if len(st.Staged) != 3 || !strings.Contains(out, "generation 1 (staged: 2)") || !strings.Contains(out, "run 'unsealer rekey --recover'") ||
		strings.Contains(out, "nothing to settle") {
		t.Fatalf("status after a kill after verify:\n%s", out)
	}
	// Killed mid-rekey with nothing staged: --abort is the command.
	w, ctx = killedAt(t, lifecycle.StepRekeyUpdate)
	if st := lifecycle.ReadRekeyState(ctx, w.recoverConfig(false)); !strings.Contains(st.Settle, "'unsealer rekey --abort'") {
		t.Fatalf("settle advice mid-rekey: %q", st.Settle)
	}
}

// failCancel is a Vault node whose rekey cancel fails.
type failCancel struct{ *vaultnode.Node }

func (failCancel) RekeyCancel(context.Context, string) error {
	return errors.New("sys/rekey/init answered 400: invalid request")
}

// TestRekeyCancelFailedWords: a cancel that fails is never reported as
// "rekey cancelled". What the rekey staged is dropped first, while the
// rekey is still in progress (no verify share was sent, so Vault uses
// generation 1 for certain, and the holders allow the drop only then);
// --recover then cancels the rekey left in progress.
func TestRekeyCancelFailedWords(t *testing.T) {
	w, ctx := unsealedWorld(t)
	// Stage fails on one holder after the others staged: the rekey is
	// cancelled, and here the cancel fails.
	w.mem[2].set(func(h *memHolder) { h.failStage = true })
	node := lifecycle.RekeyNode{Name: w.node.Name, Vault: failCancel{w.vault}}
	_, err := lifecycle.Rekey(ctx, lifecycle.RekeyConfig{Node: node, Holders: w.holders, Plan: w.plan, Old: lifecycle.FromHolders(w.holders),
		Options: lifecycle.Options{RetryFor: 200 * time.Millisecond}})
	if err == nil || strings.Contains(err.Error(), "rekey cancelled") || !strings.Contains(err.Error(), "cancelling rekey") ||
		!strings.Contains(err.Error(), "vault still uses generation 1") || !strings.Contains(err.Error(), "'unsealer rekey --abort'") {
		t.Fatalf("rekey with a failing cancel: %v", err)
	}
	if cur, staged, _ := w.mem[0].state(); cur != 1 || staged != 0 {
		t.Fatalf("holder a holds %d (staged %d), want 1 with nothing staged", cur, staged)
	}
	w.mem[2].set(func(h *memHolder) { h.failStage = false })
	msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(false))
	if err != nil || !strings.Contains(msg, "cancelled the rekey in progress") {
		t.Fatalf("recover: %q, %v", msg, err)
	}
	w.settled(t, 1)
}

// TestAbortMidRekey: --abort cancels with the nonce at every step before
// verification, and refuses after it.
func TestAbortMidRekey(t *testing.T) {
	type tc struct {
		step   lifecycle.Step
		ok     bool
		staged uint64 // what must be left staged
	}
	run := func(t *testing.T, c tc) {
		w, ctx := killedAt(t, c.step)
		msg, err := lifecycle.AbortRekey(ctx, w.recoverConfig(false))
		if c.ok != (err == nil) {
			t.Fatalf("abort: %q, %v", msg, err)
		}
		if c.ok && (w.fake.RekeyNonce() != "" || !strings.Contains(msg, "stays in force")) {
			t.Fatalf("abort: %q; rekey %q left", msg, w.fake.RekeyNonce())
		}
		w.staged(t, 1, c.staged)
	}
	for _, c := range []tc{
		{step: lifecycle.StepRekeyInit, ok: true},
		{step: lifecycle.StepCollect, ok: true},
		{step: lifecycle.StepRekeyUpdate, ok: true},
		{step: lifecycle.StepStage, ok: true},
		{step: lifecycle.StepVerify, staged: 2},
	} {
		t.Run(map[bool]string{true: "ok/", false: "fail/"}[c.ok]+string(c.step), func(t *testing.T) { run(t, c) })
	}
}
