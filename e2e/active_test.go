//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/testkit/vaultcontract"
	"github.com/keyshare/keyshare/internal/transit"
)

// activeIPs are the three Vault nodes of TestActiveNodePreferred.
var activeIPs = []string{"127.0.0.151", "127.0.0.152", "127.0.0.153"}

// TestActiveNodePreferred: the KMS plugin's Vault client sends its calls to
// the active node, not through a standby (which forwards every call, about
// twice the latency; BENCHMARKS.md). Against a real three-node raft
// cluster:
//   - the client lists the standbys first and still picks the active node;
//   - when the active node stops it picks the new one;
//   - the sys/health codes it reads are the ones the fake Vault gives
//     (vaultcontract.RunRoles, which the fake passes in its TestRoles).
func TestActiveNodePreferred(t *testing.T) {
	c := harness.NewTestVaultCluster(t, harness.VaultClusterOptions{Binary: harness.RequireVaultBinary(t), IPs: activeIPs})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	init, first, err := c.Bootstrap(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Every node must be a raft voter before one is stopped, or the two
	// left cannot elect a leader.
	if _, err := c.WaitRaftHealthy(ctx, init.RootToken); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range c.Nodes() {
		if n != first {
			addrs = append(addrs, n.APIAddr())
		}
	}
	addrs = append(addrs, first.APIAddr()) // the active node last
	cl, err := transit.New(transit.Options{Addrs: addrs, CACert: c.CA.CertPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got, err := cl.PreferActive(ctx); err != nil || got != first.APIAddr() || cl.Preferred() != got {
		t.Fatalf("PreferActive: %q, %v (preferred %s); want the active node %s", got, err, cl.Preferred(), first.APIAddr())
	}

	// The active node stops: the other two elect a new one, and the
	// client, which lists the stopped node too, picks that one.
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	second, err := c.WaitActive(wctx) // stopped nodes are not asked
	if err != nil {
		t.Fatalf("no new active node with %s stopped: %v", first, err)
	}
	if got, err := cl.PreferActive(ctx); err != nil || got != second.APIAddr() {
		t.Fatalf("PreferActive with %s stopped: %q, %v; want the new active node %s", first, got, err, second.APIAddr())
	}
	// It comes back sealed, is unsealed and joins as a standby.
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	if err := first.WaitAPI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.UnsealAll(ctx, init.KeysB64); err != nil {
		t.Fatal(err)
	}
	if n, err := c.WaitActive(ctx); err != nil || n != second {
		t.Fatalf("active node after %s rejoined: %v, %v; want %s", first, n, err, second)
	}

	var standbys []string
	for _, n := range c.Nodes() {
		if n != second {
			standbys = append(standbys, n.APIAddr())
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool()}}}
	t.Cleanup(hc.CloseIdleConnections)
	vaultcontract.RunRoles(t, ctx, vaultcontract.Cluster{Active: second.APIAddr(), Standbys: standbys, HTTP: hc,
		Seal: func(ctx context.Context, addr string) error {
			for _, n := range c.Nodes() {
				if n.APIAddr() == addr {
					if err := n.Restart(); err != nil {
						return err
					}
					return n.WaitAPI(ctx)
				}
			}
			t.Fatalf("no node at %s", addr)
			return nil
		}})
	if got, err := cl.PreferActive(ctx); err != nil || got != second.APIAddr() {
		t.Fatalf("PreferActive with a sealed standby: %q, %v; want %s", got, err, second.APIAddr())
	}
	roles := cl.Roles(ctx)
	counts := map[transit.Role]int{}
	for _, r := range roles {
		counts[r]++
	}
	if counts[transit.RoleActive] != 1 || counts[transit.RoleStandby] != 1 || counts[transit.RoleSealed] != 1 {
		t.Fatalf("roles %v; want one active, one standby, one sealed", roles)
	}
}
