package lifecycle_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/pkg/shares"
)

// newAdoptWorld is an initialized, unsealed fake Vault whose key the
// operators hold (w.keys, the paper shares) and three empty holders.
func newAdoptWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, true)
	for _, h := range w.mem {
		h.cur, h.staged = 0, 0
		clear(h.gens)
		clear(h.mans)
	}
	w.fake.Unseal()
	return w
}

// paper is a Collector filled as `--old-shares-file` fills it: no
// manifest, Vault's threshold, the given shares.
func paper(t *testing.T, ss ...shares.Share) *lifecycle.Collector {
	t.Helper()
	col := &lifecycle.Collector{Threshold: 3}
	for i, s := range ss {
		if err := col.Add(fmt.Sprintf("file share-%d line 2", i+1), hex.EncodeToString(s.Value)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(col.Zero)
	return col
}

func (w *world) adopt(ctx context.Context, killAt lifecycle.Step, old lifecycle.OldShares) (lifecycle.RekeyResult, error) {
	return lifecycle.Rekey(ctx, lifecycle.RekeyConfig{Node: w.rnode, Holders: w.holders, Plan: w.plan, Old: old,
		Options: lifecycle.Options{AfterStep: func(s lifecycle.Step) error {
			if s == killAt {
				return errKilled
			}
			return nil
		}}})
}

// paperUnseals restarts the node and checks whether the paper shares open it.
func (w *world) paperUnseals(t *testing.T, ctx context.Context) bool {
	t.Helper()
	w.restart(t)
	_, err := lifecycle.Options{}.Submit(ctx, w.node, []shares.Share{w.keys[1], w.keys[2], w.keys[3]})
	if err != nil && !errors.Is(err, lifecycle.ErrRejected) {
		t.Fatalf("submitting the paper shares: %v", err)
	}
	return err == nil && !w.fake.Sealed()
}

// TestAdopt: every holder empty, Vault initialized and unsealed, a
// threshold of the paper shares given: Vault is rekeyed with verification
// and generation 1 is dealt; the paper shares are retired.
func TestAdopt(t *testing.T) {
	w := newAdoptWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := w.adopt(ctx, "", lifecycle.FromCollector(paper(t, w.keys[1], w.keys[2], w.keys[3])))
	if err != nil || res.From != 0 || res.To != 1 {
		t.Fatalf("adopt: %+v, %v", res, err)
	}
	w.settled(t, 1)
	want := w.plan.Indices()
	for _, h := range w.mem {
		if _, _, idx := h.state(); fmt.Sprint(idx) != fmt.Sprint(want[h.id]) {
			t.Fatalf("holder %s holds indices %v, the plan deals %v", h.id, idx, want[h.id])
		}
	}
	if st := w.fake.LifecycleStats(); st.Rekeys != 1 {
		t.Fatalf("vault rekeys %d, want 1", st.Rekeys)
	}
	if w.paperUnseals(t, ctx) {
		t.Fatal("the paper shares still unseal vault after adopting")
	}
	if n, err := (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders); err != nil || n != 1 {
		t.Fatalf("unseal from the holders after adopting: %d, %v", n, err)
	}
}

// TestAdoptRejectedPaperShare: a well-formed share that is not Vault's
// (a typo): Vault rejects the set, nothing is staged, the rekey is
// cancelled, and the paper shares still open Vault.
func TestAdoptRejectedPaperShare(t *testing.T) {
	w := newAdoptWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	typo := w.keys[3].Clone()
	typo.Value[0] ^= 0x5a
	_, err := w.adopt(ctx, "", lifecycle.FromCollector(paper(t, w.keys[1], w.keys[2], typo)))
	if err == nil || !strings.Contains(err.Error(), "rejected the current shares given") || !strings.Contains(err.Error(), "rekey cancelled") {
		t.Fatalf("adopt with a wrong paper share: %v; want vault's rejection and the rekey cancelled", err)
	}
	w.settled(t, 0)
	if n := w.fake.RekeyNonce(); n != "" {
		t.Fatalf("vault still has rekey %s in progress", n)
	}
	if !w.paperUnseals(t, ctx) {
		t.Fatal("the paper shares no longer unseal vault after a refused adoption")
	}
}

// TestAdoptRefusals: holders of which some are empty and others hold a
// generation are not an adoption (refused before vault is touched, naming
// each holder's generation); the holders' shares are never used for one.
func TestAdoptRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("fail/mixed-holders", func(t *testing.T) {
		w := newWorld(t, true)
		w.fake.Unseal()
		c := w.mem[2]
		c.cur = 0
		clear(c.gens)
		_, err := w.adopt(ctx, "", lifecycle.FromCollector(paper(t, w.keys[1], w.keys[2], w.keys[3])))
		if err == nil || strings.Contains(err.Error(), "map[") ||
			!strings.Contains(err.Error(), ids[0]+": generation 1") || !strings.Contains(err.Error(), ids[2]+": none") {
			t.Fatalf("adopt over mixed holders: %v; want a refusal naming each holder's generation", err)
		}
		if st := w.fake.LifecycleStats(); st.Rekeys != 0 {
			t.Fatalf("a refused adoption started %d vault rekeys", st.Rekeys)
		}
	})
	t.Run("fail/holders-shares", func(t *testing.T) {
		w := newAdoptWorld(t)
		_, err := w.adopt(ctx, "", lifecycle.FromHolders(w.holders))
		if !errors.Is(err, lifecycle.ErrNoPaperShares) || !strings.Contains(err.Error(), "rekey cancelled") {
			t.Fatalf("adopt with the holders' shares: %v; want ErrNoPaperShares and the rekey cancelled", err)
		}
		w.settled(t, 0)
	})
	t.Run("fail/sealed", func(t *testing.T) {
		w := newAdoptWorld(t)
		w.fake.Seal()
		_, err := w.adopt(ctx, "", lifecycle.FromCollector(paper(t, w.keys[1], w.keys[2], w.keys[3])))
		if err == nil || !strings.Contains(err.Error(), "sealed, and every holder is empty") {
			t.Fatalf("adopt a sealed vault: %v", err)
		}
	})
}

// TestAdoptKilled walks doc.go's kill table for an adoption (From = 0,
// the paper shares): killed after each step, Vault restarted or not,
// --recover (with the paper shares, for the test rekey) settles on the
// generation Vault uses: nothing (the paper shares) or generation 1.
func TestAdoptKilled(t *testing.T) {
	type tc struct {
		step    lifecycle.Step
		restart bool
		want    uint64 // 0: the holders empty, the paper shares in force
		noPaper bool   // recover without the paper shares: it must refuse to guess
	}
	run := func(t *testing.T, c tc) {
		w := newAdoptWorld(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := w.adopt(ctx, c.step, lifecycle.FromCollector(paper(t, w.keys[1], w.keys[2], w.keys[3]))); !errors.Is(err, errKilled) {
			t.Fatalf("adopt: %v", err)
		}
		if c.restart {
			w.restart(t)
		}
		rc := w.recoverConfig(false)
		if !c.noPaper {
			rc.Old = lifecycle.FromCollector(paper(t, w.keys[0], w.keys[2], w.keys[4]))
		}
		msg, err := lifecycle.RecoverRekey(ctx, rc)
		switch {
		case c.noPaper:
			if !errors.Is(err, lifecycle.ErrUndecided) || !strings.Contains(err.Error(), "--old-shares-file") {
				t.Fatalf("recover without the paper shares = %q, %v; want it to refuse to guess and name --old-shares-file", msg, err)
			}
			w.staged(t, 0, 1)
			w.restart(t)
			if msg, err = lifecycle.RecoverRekey(ctx, rc); err != nil {
				t.Fatalf("recover with a sealed node: %v", err)
			}
		case c.want == 0 && c.step != lifecycle.StepStage && c.step != lifecycle.StepVerify:
			// Nothing was staged: recover cancels a rekey left in
			// progress, or says what to do.
			if err != nil && !strings.Contains(err.Error(), "every holder is empty") {
				t.Fatalf("recover: %v", err)
			}
		case err != nil:
			t.Fatalf("recover: %v", err)
		}
		t.Logf("recover: %s %v", msg, err)
		w.settled(t, c.want)
		if n := w.fake.RekeyNonce(); n != "" {
			t.Fatalf("vault still has rekey %s in progress after recovery", n)
		}
		if c.want == 0 {
			if !w.paperUnseals(t, ctx) {
				t.Fatal("the paper shares no longer unseal vault, and the holders hold nothing")
			}
			return
		}
		if w.paperUnseals(t, ctx) {
			t.Fatal("the paper shares still unseal vault after the adoption settled on generation 1")
		}
		if n, err := (lifecycle.Options{}).UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders); err != nil || n != 1 {
			t.Fatalf("unseal from the holders after recovery: %d, %v", n, err)
		}
	}
	for _, c := range []tc{
		{step: lifecycle.StepRekeyInit, want: 0},
		{step: lifecycle.StepCollect, want: 0},
		{step: lifecycle.StepRekeyUpdate, want: 0},
		{step: lifecycle.StepStage, want: 0},
		{step: lifecycle.StepVerify, want: 1},
		{step: lifecycle.StepVerify, want: 1, noPaper: true},
		{step: lifecycle.StepCommit, want: 1},
		{step: lifecycle.StepRekeyUpdate, restart: true, want: 0},
		{step: lifecycle.StepStage, restart: true, want: 0},
		{step: lifecycle.StepVerify, restart: true, want: 1},
		{step: lifecycle.StepCommit, restart: true, want: 1},
	} {
		name := "ok/" + string(c.step)
		if c.restart {
			name += "/vault-restarted"
		}
		if c.noPaper {
			name += "/no-paper-shares"
		}
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
