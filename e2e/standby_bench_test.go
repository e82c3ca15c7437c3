//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/kmsplugin"
	"github.com/keyshare/keyshare/internal/transit"
)

// BenchmarkStandbyHop: what a transit encrypt costs through a standby of
// a real three-node raft cluster (which forwards it to the active node)
// against the same call at the active node, interleaved, one at a time,
// over the plugin's own transport. It is why the plugin's client prefers
// the active node (transit.Client.PreferActive).
func BenchmarkStandbyHop(b *testing.B) {
	rounds := envInt(b, "KEYSHARE_KMS_BENCH_ROUNDS", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := harness.NewTestVaultCluster(b, harness.VaultClusterOptions{Binary: harness.RequireVaultBinary(b), IPs: activeIPs, RaftPerformanceMultiplier: 1})
	init, active, err := c.Bootstrap(ctx, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitRaftHealthy(ctx, init.RootToken); err != nil {
		b.Fatal(err)
	}
	standby := c.Node(0)
	if standby == active {
		standby = c.Node(1)
	}
	dir := b.TempDir()
	cfg := kmsplugin.Default()
	cfg.Vault.CAFile = c.CAPath
	cfg.Vault.Nodes = []confload.VaultNode{{Name: active.Name, Address: active.APIAddr()}}
	cfg.Vault.SourceAddr = topology.KMSHostA
	cfg.Vault.TokenFile = filepath.Join(dir, "vault-token")
	provisionTransit(b, ctx, cfg, init.RootToken)
	tok, err := kmsplugin.ReadTokenFile(cfg.Vault.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	at := func(n *harness.VaultNode) *floorClient {
		return newFloorClient(b, transit.Options{Addrs: []string{n.APIAddr()}, CACert: c.CA.CertPEM, SourceAddr: topology.KMSHostA},
			n.APIAddr(), cfg.Vault.Mount, cfg.Vault.Key, string(tok))
	}
	fa, fs := at(active), at(standby)
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	var ta, ts []time.Duration
	for i := range rounds + 100 {
		t0 := time.Now()
		fa.encrypt(b, seed, 1)
		t1 := time.Now()
		fs.encrypt(b, seed, 1)
		t2 := time.Now()
		if i >= 100 { // the first rounds warm both connections up
			ta, ts = append(ta, t1.Sub(t0)), append(ts, t2.Sub(t1))
		}
	}
	fmt.Printf("\n| load average (1 min): %s |\n| node | rounds | p50 | p99 |\n| --- | --- | --- | --- |\n", loadAvg())
	fmt.Printf("| active | %d | %s | %s |\n| standby | %d | %s | %s |\n", rounds, us(pct(ta, 50)), us(pct(ta, 99)), rounds, us(pct(ts, 50)), us(pct(ts, 99)))
	b.ReportMetric(float64(pct(ta, 50).Microseconds()), "active-p50-us")
	b.ReportMetric(float64(pct(ts, 50).Microseconds()), "standby-p50-us")
	b.ReportMetric(float64(pct(ts, 50))/float64(pct(ta, 50)), "standby-ratio-p50")
}
