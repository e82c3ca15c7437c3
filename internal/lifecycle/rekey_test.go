package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/pkg/shares"
)

var errKilled = errors.New("killed")

func (w *world) rekey(ctx context.Context, killAt lifecycle.Step) (lifecycle.RekeyResult, error) {
	// The current shares come from the holders, for this rekey's nonce.
	return lifecycle.Rekey(ctx, lifecycle.RekeyConfig{Node: w.rnode, Holders: w.holders, Plan: w.plan, Old: lifecycle.FromHolders(w.holders),
		Options: lifecycle.Options{AfterStep: func(s lifecycle.Step) error {
			if s == killAt {
				return errKilled
			}
			return nil
		}}})
}

// settled checks that every holder holds gen as current and nothing staged.
func (w *world) settled(t *testing.T, gen uint64) {
	t.Helper()
	for _, h := range w.mem {
		if cur, staged, _ := h.state(); cur != gen || staged != 0 {
			t.Fatalf("holder %s: current %d staged %d, want %d and none", h.id, cur, staged, gen)
		}
	}
}

func TestRekeyThenRestart(t *testing.T) {
	w, ctx := unsealedWorld(t)
	res, err := w.rekey(ctx, "")
	if err != nil || res.From != 1 || res.To != 2 {
		t.Fatalf("rekey: %+v, %v", res, err)
	}
	w.settled(t, 2)
	w.restart(t)
	// The old shares no longer unseal...
	_, err = lifecycle.Options{}.Submit(ctx, w.node, []shares.Share{w.keys[0], w.keys[1], w.keys[2]})
	if !errors.Is(err, lifecycle.ErrRejected) || !w.fake.Sealed() {
		t.Fatalf("old shares: %v, sealed %v", err, w.fake.Sealed())
	}
	// ...the holders' new generation does.
	if n, err := (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders); err != nil || n != 1 {
		t.Fatalf("unseal from holders after rekey: %d, %v", n, err)
	}
}

// TestRekeyKilled stops the rekey after each step, without clean-up as a
// kill would, then restarts Vault (or not), recovers, and unseals.
func TestRekeyKilled(t *testing.T) {
	type tc struct {
		step    lifecycle.Step
		restart bool
		want    uint64 // the generation that must end up current
		undec   bool   // recovery must refuse to guess
	}
	run := func(t *testing.T, c tc) {
		w, ctx := killedAt(t, c.step)
		if c.restart {
			w.restart(t)
		}
		rc := w.recoverConfig(false)
		msg, err := lifecycle.RecoverRekey(ctx, rc)
		if c.undec {
			if !errors.Is(err, lifecycle.ErrUndecided) {
				t.Fatalf("recover = %q, %v; want it to refuse to guess", msg, err)
			}
			// A restarted standby gives it a sealed node to test on.
			w.restart(t)
			if msg, err = lifecycle.RecoverRekey(ctx, rc); err != nil {
				t.Fatalf("recover with a sealed node: %v", err)
			}
		} else if err != nil {
			t.Fatalf("recover: %v", err)
		}
		t.Logf("recover: %s", msg)
		w.settled(t, c.want)
		if w.fake.Sealed() {
			w.restart(t)
		} else {
			w.fake.Seal()
		}
		if n, err := (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders); err != nil || n != 1 {
			t.Fatalf("unseal after recovery: %d, %v", n, err)
		}
		if st := w.fake.LifecycleStats(); c.want == 2 && st.Rekeys != 1 || c.want == 1 && st.Rekeys != 0 {
			t.Fatalf("vault rekeys %d, want generation %d", st.Rekeys, c.want)
		}
	}
	for _, c := range []tc{
		{step: lifecycle.StepCollect, restart: true, want: 1},
		{step: lifecycle.StepRekeyInit, restart: true, want: 1},
		{step: lifecycle.StepRekeyUpdate, restart: true, want: 1},
		{step: lifecycle.StepStage, restart: true, want: 1},
		{step: lifecycle.StepVerify, restart: true, want: 2},
		{step: lifecycle.StepCommit, restart: true, want: 2},
		{step: lifecycle.StepRekeyInit, want: 1},
		{step: lifecycle.StepStage, want: 1},
		{step: lifecycle.StepVerify, want: 2, undec: true},
	} {
		name := "ok/" + string(c.step)
		if c.restart {
			name += "/vault-restarted"
		}
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}

func TestAbortRekey(t *testing.T) {
	// Killed after verify: Vault uses generation 2, so abort must refuse.
	w, ctx := killedAt(t, lifecycle.StepVerify)
	if msg, err := lifecycle.AbortRekey(ctx, w.recoverConfig(false)); err == nil {
		t.Fatalf("abort after verification succeeded: %s", msg)
	}
	for _, h := range w.mem {
		if _, staged, _ := h.state(); staged != 2 {
			t.Fatalf("holder %s lost staged generation 2 to a refused abort", h.id)
		}
	}
	// Fresh world, killed at stage: the rekey is in progress, abort is safe.
	w, ctx = killedAt(t, lifecycle.StepStage)
	rc := w.recoverConfig(false)
	if st := lifecycle.ReadRekeyState(ctx, rc); !st.Started || !st.Verifying {
		t.Fatalf("status %+v", st)
	}
	if _, err := lifecycle.AbortRekey(ctx, rc); err != nil {
		t.Fatal(err)
	}
	w.settled(t, 1)
	if st := w.fake.LifecycleStats(); st.Cancels != 1 {
		t.Fatalf("cancels %d", st.Cancels)
	}
}

// TestFromHoldersNeedsTheRekeyNonce: holders release for a rekey only with
// the nonce of the rekey the node itself reports.
func TestFromHoldersNeedsTheRekeyNonce(t *testing.T) {
	w, ctx := unsealedWorld(t)
	a := lifecycle.Agree(ctx, w.holders)
	if _, err := lifecycle.FromHolders(w.holders)(ctx, a.Manifest, "vault-1", "not-a-rekey"); err == nil ||
		!strings.Contains(err.Error(), "not rekeying") {
		t.Fatalf("release for a rekey that is not in progress: err = %v", err)
	}
}
