//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/pkg/shares"
)

// story is the one deployment the scenarios share, in order: the
// operator's life with a cluster, from init to rekey.
type story struct {
	topo  *topology.Topology
	known topology.KnownShares
	// secrets is a folder outside the topology for files that hold shares
	// on purpose (the operator's paper backup); the leak check skips it.
	secrets string

	mu      sync.Mutex
	timings []string
}

// newStory starts Vault (uninitialized) and the three holders. The cleanup
// dumps every log tail if the test failed, and kills every process.
func newStory(t *testing.T) *story {
	t.Helper()
	topo := startTopology(t, topology.Options{
		// Restarting the leader or all nodes fails over in seconds, not 20.
		RaftPerformanceMultiplier: 1,
		// Debug logs give the leak check the most text to look through.
		LogLevel: "debug",
	})
	s := &story{topo: topo, secrets: t.TempDir()}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Logf("timings:\n  %s", strings.Join(s.timings, "\n  "))
	})
	return s
}

// timing logs a measured duration and keeps it for the summary.
func (s *story) timing(t *testing.T, what string, d time.Duration) {
	t.Helper()
	line := fmt.Sprintf("%s: %s", what, d.Round(time.Millisecond))
	t.Logf("timing: %s", line)
	s.mu.Lock()
	s.timings = append(s.timings, line)
	s.mu.Unlock()
}

// scenarioCtx bounds one scenario.
func scenarioCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireHealthy waits until every holder serves, the coordinator runs,
// and every Vault node is unsealed with one active node. Each scenario
// starts from there.
func (s *story) requireHealthy(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, h := range s.topo.Holders {
		if !h.Process.Running() {
			if err := s.topo.StartHolders(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !s.topo.Coordinator.Running() {
		if err := s.topo.StartCoordinator(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range s.topo.Vault.Nodes() {
		if !n.Process.Running() {
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.waitAllUnsealed(t, ctx)
}

// waitAllUnsealed waits for every node to be unsealed and one active.
func (s *story) waitAllUnsealed(t *testing.T, ctx context.Context) *harness.VaultNode {
	t.Helper()
	for _, n := range s.topo.Vault.Nodes() {
		if err := n.WaitUnsealed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

// standby returns a node that is not the active one.
func (s *story) standby(t *testing.T, ctx context.Context) *harness.VaultNode {
	t.Helper()
	leader, err := s.topo.Vault.WaitActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.topo.Vault.Nodes() {
		if n != leader {
			return n
		}
	}
	t.Fatal("no standby node")
	return nil
}

// restart stops n gracefully and starts it again, and returns when the
// process was started. The node comes back sealed.
func restart(t *testing.T, n *harness.VaultNode) time.Time {
	t.Helper()
	if err := n.Stop(); err != nil && !errors.Is(err, harness.ErrNotRunning) {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n.Process.StartedAt()
}

// waitUnsealedBy waits until n is unsealed and checks that the coordinator
// did it (its log says "unsealed" for n after offset). It returns the time
// from started to unsealed and the coordinator's log line.
func (s *story) waitUnsealedBy(t *testing.T, ctx context.Context, n *harness.VaultNode, started time.Time, offset int64) (time.Duration, topology.LogEntry) {
	t.Helper()
	if err := n.WaitUnsealed(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	e, err := topology.WaitLog(ctx, s.topo.Coordinator, offset, map[string]string{"msg": "unsealed", "node": n.Name})
	if err != nil {
		t.Fatalf("%s is unsealed but not by the coordinator: %v", n.Name, err)
	}
	return took, e
}

// sealStatus asks n once.
func sealStatus(t *testing.T, ctx context.Context, n *harness.VaultNode) *api.SealStatusResponse {
	t.Helper()
	st, err := n.SealStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// submitted is the coordinator's count of shares submitted to node.
func (s *story) submitted(t *testing.T, ctx context.Context, node string) float64 {
	t.Helper()
	v, err := s.topo.CoordinatorMetric(ctx, fmt.Sprintf(`keyshare_unsealer_shares_submitted_total{node=%q}`, node))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// exportAll takes the paper backup of every holder and remembers the
// shares for the break-glass, rekey and leak scenarios.
func (s *story) exportAll(t *testing.T, ctx context.Context, wantGen uint64) []shares.Share {
	t.Helper()
	for _, h := range s.topo.Holders {
		gen, ss, err := h.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gen != wantGen || len(ss) != h.Shares {
			t.Fatalf("holder %s exported %d shares of generation %d, want %d of generation %d", h.Name, len(ss), gen, h.Shares, wantGen)
		}
		s.known.Add(gen, ss...)
	}
	all := s.known.Generation(wantGen)
	if len(all) != 5 {
		t.Fatalf("the holders' paper backups hold %d distinct shares of generation %d, want 5", len(all), wantGen)
	}
	return all
}

// writeShareFile writes shares, hex, one per line, to a 0600 file in the
// story's secrets folder (never in the topology's folder).
func (s *story) writeShareFile(t *testing.T, name string, ss []shares.Share) string {
	t.Helper()
	var b strings.Builder
	for _, sh := range ss {
		b.WriteString(sh.Hex() + "\n")
	}
	p := filepath.Join(s.secrets, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// auditEntries returns the audit log lines of holder h that contain every
// one of subs.
func auditEntries(t *testing.T, h *topology.Holder, subs ...string) []string {
	t.Helper()
	b, err := os.ReadFile(h.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// logIndices reads a share-index list from a daemon's log line.
func logIndices(t *testing.T, e topology.LogEntry, key string) []int {
	t.Helper()
	idx, err := e.Indices(key)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
