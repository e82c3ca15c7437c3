package unsealer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/devpki"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// rig is three in-process holders with real stores, policy and audit, each
// serving the share service over mutual TLS on its own 127.0.0.x address,
// a fake Vault, and an unsealer holder set dialing from 127.0.0.80.
type rig struct {
	fake    *vaultfake.Vault
	vault   *vaultnode.Node
	servers map[string]*sharerpc.Server
	hs      *HolderSet
}

func newRig(t testing.TB) *rig {
	t.Helper()
	dir := t.TempDir()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	ident := func(role, name string) *identity.Source {
		leaf, err := ca.IssueID(role, name)
		if err != nil {
			t.Fatal(err)
		}
		c, k, err := leaf.WriteFiles(dir, role+"-"+name)
		if err != nil {
			t.Fatal(err)
		}
		src, err := identity.New(identity.Options{CAFile: filepath.Join(dir, "ca.crt"), CertFile: c, KeyFile: k})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	vleaf, _ := ca.IssueID("vault", "v1", net.ParseIP("127.0.0.85"))
	fake, raw, err := vaultfake.New("127.0.0.85:0", &tls.Config{Certificates: []tls.Certificate{vleaf.TLSCertificate()}}, 5, 3)
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
	r := &rig{fake: fake, vault: vn, servers: map[string]*sharerpc.Server{}}
	cfg := Config{Watch: WatchConfig{HolderTimeout: 3 * time.Second}, SourceAddr: "127.0.0.80"}
	plan := shares.DefaultPlan([3]string{"a", "b", "c"}).Indices()
	for i, name := range []string{"a", "b", "c"} {
		id := ca.ID("holder", name)
		key, _ := shares.KeyFromBytes(make([]byte, 32))
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
		engine, err := policy.New(policy.TrustDomain("keyshare.test"), policy.AllowRole("unsealer", "127.0.0.80/32"),
			policy.KnownTargets("vault-1"), policy.RateLimit(1e6, 1e6))
		if err != nil {
			t.Fatal(err)
		}
		svc, err := holder.NewService(id, store, engine, alog, map[string]*vaultnode.Node{"vault-1": vn}, 2*time.Second,
			holder.NewMetrics(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		src := ident("holder", name)
		srv, err := sharerpc.NewServer(sharerpc.ServerOptions{TLS: src.ServerConfig(identity.AllowRoles(identity.RoleUnsealer)), Handler: svc})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 86+i))
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		r.servers[name] = srv
		cfg.Holders = append(cfg.Holders, HolderConfig{ID: id, Address: lis.Addr().String(), Shares: len(plan[name])})
	}
	r.hs = NewHolderSet(ident("unsealer", "u1"), cfg, nil)
	t.Cleanup(r.hs.Close)
	return r
}

func (r *rig) coordinator(t testing.TB) *coordinator.Coordinator {
	t.Helper()
	c, err := coordinator.New([]coordinator.Node{{Name: "vault-1", Vault: r.vault}}, r.hs, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUnsealOverMTLS: real holders, real mutual TLS, the fake Vault; any
// two holders suffice, one does not.
func TestUnsealOverMTLS(t *testing.T) {
	r := newRig(t)
	c := r.coordinator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, took, err := c.UnsealOnce(ctx, "vault-1")
	if err != nil || !ok {
		t.Fatalf("all holders up: unsealed=%v err=%v", ok, err)
	}
	t.Logf("unsealed in %s with 3 holders", took)

	r.servers["c"].Stop()
	r.fake.Seal()
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		t.Fatalf("holder c down: unsealed=%v err=%v", ok, err)
	}
	r.servers["b"].Stop()
	r.fake.Seal()
	before := r.fake.Stats().Submitted
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err == nil || ok {
		t.Fatal("unsealed with holder a alone")
	}
	if r.fake.Stats().Submitted != before {
		t.Fatal("shares submitted with only one holder up")
	}
	if r.fake.Stats().Wasted != 0 {
		t.Fatal("an unseal attempt was wasted")
	}
}

// BenchmarkSealedToUnsealed is the time from the poll that sees the node
// sealed to its confirmed unseal, with 3 holders on loopback mTLS and the
// fake Vault (manifests, releases with the holders' own Vault check, 3
// submissions, a confirming status).
//
//	go test -run '^$' -bench SealedToUnsealed -benchtime 200x ./internal/unsealer/
func BenchmarkSealedToUnsealed(b *testing.B) {
	r := newRig(b)
	c := r.coordinator(b)
	ctx := context.Background()
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r.fake.Seal()
		if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

// BenchmarkHolderRelease is one Release from a real holder over an open
// mutual-TLS connection, including the holder's own seal-status check of
// the (fake) Vault node, the policy decision and the fsynced audit entry.
//
//	go test -run '^$' -bench HolderRelease -benchtime 300x ./internal/unsealer/
func BenchmarkHolderRelease(b *testing.B) {
	r := newRig(b)
	c, err := r.hs.Client(r.hs.cfgs[0].ID)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		ss, err := c.Release(ctx, "vault-1", 1)
		if err != nil || len(ss) != 2 {
			b.Fatalf("release: %d shares, %v", len(ss), err)
		}
	}
}
