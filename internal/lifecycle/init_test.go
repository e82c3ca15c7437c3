package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
)

func TestInit(t *testing.T) {
	w := newWorld(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := lifecycle.Init(ctx, lifecycle.InitConfig{Node: w.inode, Holders: w.holders, Plan: w.plan, Options: lifecycle.Options{Out: &out}})
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out.String())
	}
	if res.Generation != 1 || !res.Committed || res.RootToken != w.fake.RootToken() || w.fake.Sealed() {
		t.Fatalf("result %+v, sealed %v", res, w.fake.Sealed())
	}
	// Dealt 2/2/1 in plan order, every holder with the same manifest.
	want := [][]uint8{{1, 2}, {3, 4}, {5}}
	for i, h := range w.mem {
		cur, staged, idx := h.state()
		if cur != 1 || staged != 0 || !slices.Equal(idx, want[i]) || !h.mans[1].Equal(res.Manifest) {
			t.Fatalf("holder %s: current %d staged %d indices %v", h.id, cur, staged, idx)
		}
	}
	// Any two holders unseal, and nothing is ever wasted.
	for down := range w.mem {
		w.fake.Seal()
		w.mem[down].set(func(h *memHolder) { h.down = true })
		n, err := lifecycle.Options{}.UnsealFromHolders(ctx, []lifecycle.Node{w.node}, w.holders)
		w.mem[down].set(func(h *memHolder) { h.down = false })
		if err != nil || n != 1 || w.fake.Sealed() {
			t.Fatalf("holder %s down: unsealed %d, err %v", w.mem[down].id, n, err)
		}
	}
	if st := w.fake.Stats(); st.Wasted != 0 {
		t.Fatalf("wasted %d attempts", st.Wasted)
	}
	// No share in the progress output.
	if strings.Contains(out.String(), res.RootToken) {
		t.Fatal("root token in progress output")
	}
}

func TestInitFailures(t *testing.T) {
	type tc struct {
		name        string
		initialized bool
		prep        func(w *world)
		want        string
		wantInits   int
	}
	run := func(t *testing.T, c tc) {
		w := newWorld(t, c.initialized)
		if c.prep != nil {
			c.prep(w)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := lifecycle.Init(ctx, lifecycle.InitConfig{Node: w.inode, Holders: w.holders, Plan: w.plan,
			Options: lifecycle.Options{RetryFor: 300 * time.Millisecond}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("err = %v, want it to contain %q", err, c.want)
		}
		if got := w.fake.LifecycleStats().Inits; got != c.wantInits {
			t.Fatalf("vault initialized %d times, want %d", got, c.wantInits)
		}
		for _, h := range w.mem {
			if _, staged, _ := h.state(); staged != 0 {
				t.Fatalf("holder %s left with generation %d staged", h.id, staged)
			}
		}
	}
	for _, c := range []tc{
		{name: "fail/already-initialized", initialized: true, want: "unsealer rekey"},
		{name: "fail/holder-down-before-init", prep: func(w *world) { w.mem[2].down = true }, want: "nothing was changed"},
		{name: "fail/stage-fails-after-init", prep: func(w *world) { w.mem[1].failStage = true }, want: "wipe its storage", wantInits: 1},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestInitKilled stops init after each step, as a kill would, and checks
// the rows of the package documentation's init table: --recover commits
// a staged generation after testing it on the sealed node, says to wipe
// when nothing was dealt, and `init --abort` never drops a generation of
// an initialized Vault.
func TestInitKilled(t *testing.T) {
	type tc struct {
		step lifecycle.Step
		says string // in --recover's message or error
		lost bool   // the keys are gone: recover must say to wipe
	}
	run := func(t *testing.T, c tc) {
		w := newWorld(t, false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := lifecycle.Init(ctx, lifecycle.InitConfig{Node: w.inode, Holders: w.holders, Plan: w.plan, Options: lifecycle.Options{AfterStep: func(s lifecycle.Step) error {
			if s == c.step {
				return errKilled
			}
			return nil
		}}})
		if !errors.Is(err, errKilled) {
			t.Fatalf("init: %v", err)
		}
		if _, staged, _ := w.mem[0].state(); staged != 0 {
			if err := lifecycle.AbortInit(ctx, w.node, w.holders, staged, lifecycle.Options{}); err == nil || !strings.Contains(err.Error(), "--recover") {
				t.Fatalf("init --abort on an initialized vault: %v", err)
			}
		}
		msg, err := lifecycle.RecoverRekey(ctx, w.recoverConfig(false))
		if c.lost {
			if err == nil || !strings.Contains(err.Error(), "wipe its storage") {
				t.Fatalf("recover = %q, %v; want it to say to wipe", msg, err)
			}
			return
		}
		if err != nil || !strings.Contains(msg, c.says) {
			t.Fatalf("recover = %q, %v; want %q", msg, err, c.says)
		}
		w.settled(t, 1)
		w.unsealsFromHolders(t, ctx)
	}
	for _, c := range []tc{
		{step: lifecycle.StepInitVault, lost: true},
		{step: lifecycle.StepInitStage, says: "committed staged generation 1"},
		{step: lifecycle.StepInitCheck, says: "committed staged generation 1"},
		{step: lifecycle.StepInitCmt, says: "nothing to recover"},
	} {
		t.Run("ok/"+string(c.step), func(t *testing.T) { run(t, c) })
	}
}

// TestInitNodeUnsealedFirst: a coordinator running beside init may unseal
// the node from the holders between their commit and init's own unseal.
// That is success, said in words, not "failed: <nil>"; a node still sealed
// with nothing submitted is not.
func TestInitNodeUnsealedFirst(t *testing.T) {
	run := func(t *testing.T, unseal bool) (string, error) {
		w := newWorld(t, false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out bytes.Buffer
		_, err := lifecycle.Init(ctx, lifecycle.InitConfig{Node: w.inode, Holders: w.holders, Plan: w.plan, Options: lifecycle.Options{Out: &out,
			AfterStep: func(s lifecycle.Step) error {
				if s == lifecycle.StepInitCmt && unseal {
					w.fake.Unseal() // the coordinator got there first
				}
				return nil
			}}})
		return out.String(), err
	}
	t.Run("ok/unsealed-by-coordinator", func(t *testing.T) {
		out, err := run(t, true)
		if err != nil || !strings.Contains(out, "unsealed already") {
			t.Fatalf("init: %v\n%s", err, out)
		}
	})
	t.Run("ok/unsealed-by-init", func(t *testing.T) {
		out, err := run(t, false)
		if err != nil || strings.Contains(out, "unsealed already") {
			t.Fatalf("init: %v\n%s", err, out)
		}
	})
}
