//go:build e2e && soak

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/pkg/shares"
)

// Soak bounds: with at least 2 holders up, every node is unsealed within
// soakUnsealBound and one is active within soakActiveBound of the fault
// (or of the second holder coming back).
const (
	soakUnsealBound = 15 * time.Second
	soakActiveBound = 30 * time.Second
	// soakObserve is how long a sealed node is watched with fewer than 2
	// holders up.
	soakObserve = 3 * time.Second
)

// TestSoak restarts Vault nodes and holders at random for SOAK_TIME
// (default 5m; `make soak`). After each step:
//   - with at least 2 holders up, every node is unsealed and one active
//     within the bounds above;
//   - with fewer, a node is restarted and watched for soakObserve: it
//     stays sealed with unseal progress 0 and the coordinator submits no
//     share; then a holder comes back and the first rule applies.
//
// At the end: no attempt Vault refused, no stale reset (nothing but the
// coordinator unseals here), and no share in any log. SOAK_SEED fixes
// the random sequence.
func TestSoak(t *testing.T) {
	dur := 5 * time.Minute
	if v := os.Getenv("SOAK_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_TIME=%q: %v", v, err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("soak for %s, SOAK_SEED=%d", dur, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	topo := newFaultTopology(t, requireBinaries(t), "info")
	ctx, cancel := context.WithTimeout(context.Background(), dur+10*time.Minute)
	defer cancel()
	var known topology.KnownShares
	initAndExport(t, ctx, topo, &known, map[string][]int{}, map[int]shares.Share{})

	var st soakStats
	deadline := time.Now().Add(dur)
	for step := 1; time.Now().Before(deadline); step++ {
		up, down := holdersByState(topo)
		var what string
		var from time.Time
		switch r := rng.IntN(10); {
		case len(up) < 2:
			n := topo.Vault.Node(rng.IntN(3))
			restartVault(t, n, rng.IntN(2) == 0)
			soakNoSubmit(t, ctx, topo, n, len(up))
			st.starved++
			h := down[rng.IntN(len(down))]
			if err := topo.StartHolders(ctx, h); err != nil {
				t.Fatal(err)
			}
			what, from = fmt.Sprintf("%d holder(s) up: restarted %s, nothing submitted for %s; started holder %s", len(up), n.Name, soakObserve, h.Name), time.Now()
		case r < 5:
			n := topo.Vault.Node(rng.IntN(3))
			kill := rng.IntN(2) == 0
			from = restartVault(t, n, kill)
			what = fmt.Sprintf("restarted %s (kill -9: %t)", n.Name, kill)
			st.vaultRestarts++
		case r < 8 || len(down) == 0:
			h := up[rng.IntN(len(up))]
			if err := h.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			what, from = "killed holder "+h.Name, time.Now()
			st.holderKills++
		default:
			h := down[rng.IntN(len(down))]
			if err := topo.StartHolders(ctx, h); err != nil {
				t.Fatal(err)
			}
			what, from = "started holder "+h.Name, time.Now()
		}
		if up, _ := holdersByState(topo); len(up) >= 2 {
			u, a := soakRecover(t, ctx, topo, from)
			if strings.Contains(what, "restarted") { // a node was sealed
				st.unseal = append(st.unseal, u)
				st.active = append(st.active, a)
			}
			t.Logf("step %d: %s; %d holders up; all unsealed in %s, one active in %s", step, what, len(up), u.Round(time.Millisecond), a.Round(time.Millisecond))
		} else {
			t.Logf("step %d: %s; %d holder(s) up", step, what, len(up))
		}
	}

	for _, h := range topo.Holders {
		if !h.Process.Running() {
			if err := topo.StartHolders(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	soakRecover(t, ctx, topo, time.Now())
	noWaste(t, ctx, topo, 0, false)
	if v := metricSum(t, ctx, topo, "keyshare_unsealer_stale_resets_total", ""); v != 0 {
		t.Errorf("coordinator reset stale progress %v times; nobody else unseals here", v)
	}
	failed := metricSum(t, ctx, topo, "keyshare_unsealer_attempts_total", `result="error"`)
	unsealed := metricSum(t, ctx, topo, "keyshare_unsealer_attempts_total", `result="unsealed"`)
	checkNoLeaks(t, topo, &known)
	t.Logf("soak summary (SOAK_TIME=%s, SOAK_SEED=%d): %d vault restarts, %d holder kills, %d starved phases (<2 holders: 0 shares submitted, progress 0); %v unseals, %v attempts interrupted by a Vault restart, 0 rejected; after a step that sealed a node, all unsealed: median %s, max %s (bound %s); one active: median %s, max %s (bound %s)",
		dur, seed, st.vaultRestarts, st.holderKills, st.starved, unsealed, failed,
		median(st.unseal).Round(time.Millisecond), maxD(st.unseal).Round(time.Millisecond), soakUnsealBound,
		median(st.active).Round(time.Millisecond), maxD(st.active).Round(time.Millisecond), soakActiveBound)
}

type soakStats struct {
	vaultRestarts, holderKills, starved int
	unseal, active                      []time.Duration
}

func maxD(ds []time.Duration) time.Duration {
	m := time.Duration(0)
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func holdersByState(topo *topology.Topology) (up, down []*topology.Holder) {
	for _, h := range topo.Holders {
		if h.Process.Running() {
			up = append(up, h)
		} else {
			down = append(down, h)
		}
	}
	return up, down
}

// restartVault kills (kill -9) or stops n, starts it, and returns when.
func restartVault(t *testing.T, n *harness.VaultNode, kill bool) time.Time {
	t.Helper()
	if kill {
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
	} else if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n.Process.StartedAt()
}

// soakRecover waits until every node is unsealed and one is active, within
// the soak bounds counted from from.
func soakRecover(t *testing.T, ctx context.Context, topo *topology.Topology, from time.Time) (unsealed, active time.Duration) {
	t.Helper()
	uctx, cancel := context.WithDeadline(ctx, from.Add(soakUnsealBound))
	defer cancel()
	for _, n := range topo.Vault.Nodes() {
		if err := n.WaitUnsealed(uctx); err != nil {
			t.Fatalf("not every node unsealed within %s with 2 or more holders up: %v", soakUnsealBound, err)
		}
	}
	unsealed = time.Since(from)
	actx, cancel2 := context.WithDeadline(ctx, from.Add(soakActiveBound))
	defer cancel2()
	if _, err := topo.Vault.WaitActive(actx); err != nil {
		t.Fatalf("no active node within %s: %v", soakActiveBound, err)
	}
	return unsealed, time.Since(from)
}

// soakNoSubmit watches sealed node n for soakObserve with fewer than 2
// holders up: its unseal progress stays 0 and the coordinator's count of
// submitted shares does not move.
func soakNoSubmit(t *testing.T, ctx context.Context, topo *topology.Topology, n *harness.VaultNode, up int) {
	t.Helper()
	before := metricSum(t, ctx, topo, "keyshare_unsealer_shares_submitted_total", "")
	end := time.Now().Add(soakObserve)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := n.SealStatus(actx)
		cancel()
		if err == nil && (!st.Sealed || st.Progress != 0) {
			t.Fatalf("with %d holder(s) up, %s reports sealed=%t progress=%d: a share was submitted", up, n.Name, st.Sealed, st.Progress)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
	if after := metricSum(t, ctx, topo, "keyshare_unsealer_shares_submitted_total", ""); after != before {
		t.Fatalf("with %d holder(s) up, the coordinator submitted %v shares", up, after-before)
	}
}
