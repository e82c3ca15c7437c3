//go:build costs

package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/devpki"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Addresses of the release rig: fake Vault on .226, holders on .227-229,
// the coordinator dialing from .230.
const (
	rigVaultIP    = "127.0.0.226"
	rigHolderBase = 226
	rigSource     = "127.0.0.230"
)

// rig is three in-process holders with real sealed stores, policy and
// fsynced audit logs serving the share service over mutual TLS, a fake
// Vault, and the unsealer's holder set (as internal/unsealer's test rig).
type rig struct {
	fake  *vaultfake.Vault
	vault *vaultnode.Node
	hs    *unsealer.HolderSet
	ids   []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	vleaf, err := ca.IssueID("vault", "v1", net.ParseIP(rigVaultIP))
	if err != nil {
		t.Fatal(err)
	}
	fake, raw, err := vaultfake.New(rigVaultIP+":0", &tls.Config{Certificates: []tls.Certificate{vleaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	vn, err := vaultnode.New("vault-1", fake.URL(), vaultnode.Options{CACert: ca.CertPEM})
	if err != nil {
		t.Fatal(err)
	}
	var all []shares.Share
	for i, r := range raw {
		all = append(all, shares.Share{Index: uint8(i + 1), Value: r})
	}
	m := shares.NewManifest(1, 3, all)
	r := &rig{fake: fake, vault: vn}
	cfg := unsealer.Config{Watch: unsealer.WatchConfig{HolderTimeout: 3 * time.Second}, SourceAddr: rigSource}
	plan := shares.DefaultPlan([3]string{"a", "b", "c"}).Indices()
	for i, name := range []string{"a", "b", "c"} {
		id := ca.ID("holder", name)
		key, err := shares.KeyFromBytes(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		store, err := shares.OpenStore(filepath.Join(dir, "store-"+name), id, key)
		if err != nil {
			t.Fatal(err)
		}
		b := &shares.Bundle{HolderID: id, Generation: 1, Manifest: m}
		for _, x := range plan[name] {
			b.Shares = append(b.Shares, all[x-1].Clone())
		}
		if err := store.Stage(b); err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(1); err != nil {
			t.Fatal(err)
		}
		alog, err := audit.Open(filepath.Join(dir, "audit-"+name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { alog.Close() })
		engine, err := policy.New(policy.TrustDomain("keyshare.test"), policy.AllowRole("unsealer", rigSource+"/32"),
			policy.KnownTargets("vault-1"), policy.RateLimit(1e6, 1e6))
		if err != nil {
			t.Fatal(err)
		}
		svc, err := holder.NewService(id, store, engine, alog, map[string]*vaultnode.Node{"vault-1": vn}, 2*time.Second,
			holder.NewMetrics(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		src := source(t, ca, dir, "holder", name)
		srv, err := sharerpc.NewServer(sharerpc.ServerOptions{TLS: src.ServerConfig(identity.AllowRoles(identity.RoleUnsealer)), Handler: svc})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", ip(rigHolderBase+1+i)+":0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		cfg.Holders = append(cfg.Holders, unsealer.HolderConfig{ID: id, Address: lis.Addr().String(), Shares: len(plan[name])})
		r.ids = append(r.ids, id)
	}
	r.hs = unsealer.NewHolderSet(source(t, ca, dir, "unsealer", "u1"), cfg, nil)
	t.Cleanup(r.hs.Close)
	return r
}

// percentiles returns p50, p90, p99 and the maximum of ds.
func percentiles(ds []time.Duration) (p50, p90, p99, top time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.90), at(0.99), s[len(s)-1]
}

func fmtPct(ds []time.Duration) string {
	p50, p90, p99, top := percentiles(ds)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("p50 %s / p90 %s / p99 %s ms (max %s)", ms(p50), ms(p90), ms(p99), ms(top))
}

// TestReleaseLatency times 1000 Releases, in turn from each holder, over
// open mutual-TLS connections: the holder's own seal-status check of the
// fake Vault, the policy decision, opening the sealed file and the fsynced
// audit entry included. Then 200 whole unseals, from the poll that sees the
// node sealed to its confirmed unseal.
func TestReleaseLatency(t *testing.T) {
	const releases, unseals = 1000, 200
	r := newRig(t)
	ctx := context.Background()
	var clients []*sharerpc.Client
	for _, id := range r.ids {
		c, err := r.hs.Client(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Release(ctx, "vault-1", 1); err != nil { // connect
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	ds := make([]time.Duration, 0, releases)
	for i := range releases {
		start := time.Now()
		ss, err := clients[i%len(clients)].Release(ctx, "vault-1", 1)
		ds = append(ds, time.Since(start))
		if err != nil || len(ss) == 0 {
			t.Fatalf("release %d: %d shares, %v", i, len(ss), err)
		}
	}
	t.Logf("Release: %s over %d", fmtPct(ds), releases)
	record("Release latency (one holder)", fmtPct(ds), "", fmt.Sprintf("%d Releases round-robin over 3 in-process holders, open mTLS connections, audit fsync", releases))

	c, err := coordinator.New([]coordinator.Node{{Name: "vault-1", Vault: r.vault}}, r.hs, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		t.Fatalf("first unseal: %v %v", ok, err)
	}
	us := make([]time.Duration, 0, unseals)
	for i := range unseals {
		r.fake.Seal()
		ok, took, err := c.UnsealOnce(ctx, "vault-1")
		if err != nil || !ok {
			t.Fatalf("unseal %d: %v %v", i, ok, err)
		}
		us = append(us, took)
	}
	if w := r.fake.Stats().Wasted; w != 0 {
		t.Fatalf("%d unseal attempts wasted", w)
	}
	t.Logf("sealed to unsealed: %s over %d", fmtPct(us), unseals)
	record("sealed to unsealed (coordinator)", fmtPct(us), "", fmt.Sprintf("%d unseals of the fake Vault: manifests, 2-3 Releases, 3 submissions, confirming status", unseals))
}
