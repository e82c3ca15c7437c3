//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// TestOperatorStory is the life of one keyshare deployment, told in order
// against a real three-node Vault cluster, three holders and a coordinator,
// each on its own loopback address. Every scenario starts from a healthy
// cluster and leaves one behind; the last one searches everything every
// process printed for a leaked share.
func TestOperatorStory(t *testing.T) {
	s := newStory(t)
	if !t.Run("01_fresh_cluster_init_deals_2_2_1_and_all_nodes_unseal", s.freshInit) {
		t.FailNow() // nothing below makes sense without an initialized cluster
	}
	t.Run("02_restart_one_node_unseals_with_no_person", s.restartOne)
	t.Run("03_restart_all_three_at_once", s.restartAll)
	t.Run("04_holder_c_down_a_and_b_still_unseal", s.holderCDown)
	t.Run("05_only_holder_b_up_stays_sealed_and_says_why", s.onlyHolderB)
	t.Run("06_same_ca_wrong_role_is_denied_and_audited", s.wrongRole)
	t.Run("07_tampered_store_is_caught_and_the_others_unseal", s.tamperedStore)
	t.Run("08_break_glass_typed_shares_with_every_holder_down", s.breakGlass)
	t.Run("09_rekey_then_restart_new_generation_unseals_old_fails", s.rekey)
	t.Run("10_no_share_in_any_log_or_output", s.noLeaks)
}

// 1. A fresh cluster: the coordinator is already watching and says the
// cluster is not initialized. The operator runs `unsealer init`, which
// deals 2/2/1 and unseals vault-1 through the holders. The followers join
// the raft cluster (they report initialized: false until they have), and
// the coordinator unseals them with no one typing anything.
func (s *story) freshInit(t *testing.T) {
	ctx := scenarioCtx(t, 3*time.Minute)
	topo := s.topo
	if err := topo.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.WaitLog(ctx, topo.Coordinator, 0, map[string]string{"msg": "vault node is not initialized; keyshare never initializes by itself: run 'unsealer init'"}); err != nil {
		t.Fatal(err)
	}
	st, err := topo.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 || !strings.Contains(st.Stdout, "not initialized: run 'unsealer init'") {
		t.Fatalf("status before init: exit %d, want 3 and 'not initialized':\n%s%s", st.Code, st.Stdout, st.Stderr)
	}

	start := time.Now()
	res, err := topo.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.timing(t, "unsealer init (vault init, deal 2/2/1, unseal vault-1)", time.Since(start))
	if !strings.Contains(res.Stderr, "init done: generation 1 dealt to 3 holders") || !strings.Contains(res.Stdout, "WARNING") {
		t.Fatalf("init output:\n%s", res.Stderr)
	}

	// Every holder holds generation 1: 2, 2 and 1 shares, disjoint, 5 in all.
	seen := map[uint8]string{}
	var hash string
	for _, h := range topo.Holders {
		r, err := h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.StoreOpens || r.Current != 1 || len(r.Indices) != h.Shares || r.Threshold != 3 || r.TotalShares != 5 {
			t.Fatalf("holder %s: store_opens=%t generation=%d indices=%v threshold=%d of %d, want generation 1, %d indices, 3 of 5 (%s)",
				h.Name, r.StoreOpens, r.Current, r.Indices, r.Threshold, r.TotalShares, h.Shares, r.StoreError)
		}
		for _, i := range r.Indices {
			if other, dup := seen[i]; dup {
				t.Fatalf("share %d is held by holders %s and %s", i, other, h.Name)
			}
			seen[i] = h.Name
		}
		if hash != "" && r.ManifestHash != hash {
			t.Fatalf("holder %s's manifest %s differs from %s", h.Name, r.ManifestHash, hash)
		}
		hash = r.ManifestHash
		t.Logf("holder %s: generation %d, shares %v, manifest %s", h.Name, r.Current, r.Indices, r.ManifestHash)
	}

	// Gossip over mutual TLS: every holder sees the other holders and the
	// coordinator alive (the coordinator learns holders' addresses from it).
	for _, h := range topo.Holders {
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := harness.PollEvery(gctx, 200*time.Millisecond, fmt.Sprintf("holder %s to see %d gossip members alive", h.Name, len(topo.Holders)+1), func() (bool, error) {
			r, err := h.Status(ctx)
			if err != nil {
				return false, harness.Stop(err)
			}
			alive := 0
			for _, p := range r.Peers {
				if p.State == "alive" {
					alive++
				}
			}
			return alive == len(topo.Holders)+1, fmt.Errorf("%d alive: %+v (%s)", alive, r.Peers, r.PeersError)
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("the holders hold %d distinct shares, want 5", len(seen))
	}

	// The followers join through retry_join and the coordinator unseals them.
	for _, n := range topo.Vault.Nodes() {
		if err := n.WaitUnsealed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.timing(t, "init start to all 3 nodes unsealed", time.Since(start))
	leader, err := topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range topo.Vault.Nodes()[1:] {
		if _, err := topology.WaitLog(ctx, topo.Coordinator, 0, map[string]string{"msg": "unsealed", "node": n.Name}); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	t.Logf("active node: %s", leader.Name)
	if st, err := topo.Status(ctx); err != nil || st.Code != 0 {
		t.Fatalf("status after init: exit %d (%v):\n%s%s", st.Code, err, st.Stdout, st.Stderr)
	}

	// The operator takes the paper backup (break glass, leak check).
	s.exportAll(t, ctx, 1)
}

// 2. A node restarts (a reboot, an upgrade): it comes back sealed, and the
// coordinator unseals it with no person involved.
func (s *story) restartOne(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	s.requireHealthy(t, ctx)
	n := s.standby(t, ctx)
	offset := topology.LogOffset(s.topo.Coordinator)
	started := restart(t, n)
	took, e := s.waitUnsealedBy(t, ctx, n, started, offset)
	s.timing(t, "restart one node ("+n.Name+"): process start to unsealed", took)
	t.Logf("coordinator: %s unsealed with shares %v", n.Name, logIndices(t, e, "indices"))
	if _, err := s.topo.Vault.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	s.timing(t, "restart one node ("+n.Name+"): process start to standby of an active cluster", time.Since(started))
}

// 3. Every node restarts at once (a power cut): all three come back
// sealed, the coordinator unseals them all, and raft elects a leader.
func (s *story) restartAll(t *testing.T) {
	ctx := scenarioCtx(t, 3*time.Minute)
	s.requireHealthy(t, ctx)
	if err := s.topo.Vault.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, n := range s.topo.Vault.Nodes() {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range s.topo.Vault.Nodes() {
		if err := n.WaitUnsealed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.timing(t, "restart all 3 nodes: start to all unsealed", time.Since(start))
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.timing(t, "restart all 3 nodes: start to an active leader ("+leader.Name+") and 2 standbys", time.Since(start))
	if err := s.topo.Vault.WaitReplicated(ctx, s.topo.RootToken()); err != nil {
		t.Fatal(err)
	}
}

// 4. Holder C is down (its host is being patched). The active node
// restarts: holders A and B have 4 shares, so it still unseals.
func (s *story) holderCDown(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	s.requireHealthy(t, ctx)
	c := s.topo.Holder("c")
	if err := s.topo.StopHolders(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.topo.StartHolders(context.Background(), c) })
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offset := topology.LogOffset(s.topo.Coordinator)
	started := restart(t, leader)
	took, e := s.waitUnsealedBy(t, ctx, leader, started, offset)
	s.timing(t, "holder c down, restart the active node ("+leader.Name+"): start to unsealed", took)
	if idx := logIndices(t, e, "indices"); slices.Contains(idx, 5) || len(idx) != 3 {
		t.Fatalf("%s was unsealed with shares %v, want 3 of holders a and b (share 5 is holder c's, which is down)", leader.Name, idx)
	}
	newLeader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("active node after the restart: %s", newLeader.Name)
	if err := s.topo.StartHolders(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// 5. Holders A and C are down: B alone has 2 shares, below the threshold
// of 3. A restarted node stays sealed, the coordinator submits nothing and
// says it cannot unseal, and `unsealer status` says why. Once A is back,
// the node unseals.
func (s *story) onlyHolderB(t *testing.T) {
	ctx := scenarioCtx(t, 2*time.Minute)
	s.requireHealthy(t, ctx)
	a, c := s.topo.Holder("a"), s.topo.Holder("c")
	if err := s.topo.StopHolders(a, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.topo.StartHolders(context.Background(), a, c) })
	n := s.standby(t, ctx)
	before := s.submitted(t, ctx, n.Name)
	offset := topology.LogOffset(s.topo.Coordinator)
	restart(t, n)
	e, err := topology.WaitLog(ctx, s.topo.Coordinator, offset, map[string]string{"msg": "cannot unseal: nothing submitted", "node": n.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("coordinator: cannot unseal %s: shares_reachable=%s threshold=%s err=%q", n.Name, e.Get("shares_reachable"), e.Get("threshold"), e.Get("err"))

	st, err := s.topo.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unsealer status (exit %d):\n%s", st.Code, st.Stdout)
	if st.Code != 3 {
		t.Fatalf("status exit %d, want 3", st.Code)
	}
	for _, want := range []string{"missing: ", "they hold 2 of 3 shares", "sealed: " + n.Name} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	// Give the coordinator a few more rounds: still sealed, nothing in.
	window, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for window.Err() == nil {
		if ss := sealStatus(t, ctx, n); !ss.Sealed || ss.Progress != 0 {
			t.Fatalf("%s: sealed=%t progress=%d, want sealed with progress 0: a share was submitted", n.Name, ss.Sealed, ss.Progress)
		}
		select { // sample the invariant every 200 ms for the whole window
		case <-window.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if after := s.submitted(t, ctx, n.Name); after != before {
		t.Fatalf("the coordinator submitted %v shares to %s with only holder b up", after-before, n.Name)
	}

	// Holder A comes back: A+B hold 4 shares.
	offset = topology.LogOffset(s.topo.Coordinator)
	started := time.Now()
	if err := s.topo.StartHolders(ctx, a); err != nil {
		t.Fatal(err)
	}
	took, _ := s.waitUnsealedBy(t, ctx, n, started, offset)
	s.timing(t, "holder a back: holder start to "+n.Name+" unsealed", took)
	if err := s.topo.StartHolders(ctx, c); err != nil {
		t.Fatal(err)
	}
}
