// Package rig is an in-process keyshare deployment for tests and
// benchmarks: three holders with real sealed stores, release policy and
// fsynced audit logs, each serving the share service over mutual TLS on its
// own loopback address, a fake Vault (internal/testkit/vaultfake) they check and
// the coordinator unseals, and the unsealer's holder set dialing from the
// coordinator's address. The e2e suite runs the real processes instead.
package rig

import (
	"bytes"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/testkit/fakenode"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Addrs are the loopback addresses of the simulated hosts.
type Addrs struct {
	Vault   string    // the fake Vault node
	Holders [3]string // holders a, b and c
	Source  string    // the coordinator, the only address holders release to
}

// Rig is the running deployment. Holder IDs are in IDs, in order a, b, c.
type Rig struct {
	Fake    *vaultfake.Vault
	Vault   *vaultnode.Node
	Servers map[string]*sharerpc.Server // by holder name
	Holders *unsealer.HolderSet
	IDs     []string
}

// New starts the deployment with generation 1 dealt 2/2/1; everything
// stops when the test ends.
func New(tb testing.TB, a Addrs) *Rig {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	pki := NewPKI(tb, "keyshare.test")
	ca, dir := pki.CA, pki.Dir
	fn := fakenode.Start(tb, a.Vault, fakenode.Options{CA: ca})
	fake, vn, all := fn.Fake, fn.Vault, fn.Shares()
	m := shares.NewManifest(1, 3, all)
	r := &Rig{Fake: fake, Vault: vn, Servers: map[string]*sharerpc.Server{}}
	cfg := unsealer.Config{Watch: unsealer.WatchConfig{HolderTimeout: 3 * time.Second}, SourceAddr: a.Source}
	plan := shares.DefaultPlan([3]string{"a", "b", "c"}).Indices()
	for i, name := range []string{"a", "b", "c"} {
		id := ca.ID("holder", name)
		key, err := shares.KeyFromBytes(make([]byte, 32))
		must(err)
		store, err := shares.OpenStore(filepath.Join(dir, "store-"+name), id, key)
		must(err)
		b := &shares.Bundle{HolderID: id, Generation: 1, Manifest: m}
		for _, x := range plan[name] {
			b.Shares = append(b.Shares, all[x-1].Clone())
		}
		must(store.Stage(b))
		must(store.Commit(1))
		alog, err := audit.Open(filepath.Join(dir, "audit-"+name+".log"), bytes.Repeat([]byte{byte(i + 1)}, audit.KeyLen))
		must(err)
		tb.Cleanup(func() { alog.Close() })
		engine, err := policy.New(policy.TrustDomain("keyshare.test"), policy.AllowRole("unsealer", a.Source+"/32"),
			policy.KnownTargets("vault-1"), policy.RateLimit(1e6, 1e6))
		must(err)
		svc, err := holder.NewService(id, store, engine, alog, map[string]*vaultnode.Node{"vault-1": vn}, 2*time.Second,
			holder.NewMetrics(), slog.New(slog.DiscardHandler))
		must(err)
		// After the server stops: wait for the service's proof watches,
		// which write to the store, before the temp dir goes.
		tb.Cleanup(svc.Close)
		srv, err := sharerpc.NewServer(sharerpc.ServerOptions{TLS: pki.Source("holder", name).ServerConfig(identity.AllowRoles(identity.RoleUnsealer)), Handler: svc})
		must(err)
		lis, err := net.Listen("tcp", a.Holders[i]+":0")
		must(err)
		go func() { _ = srv.Serve(lis) }()
		tb.Cleanup(srv.Stop)
		r.Servers[name] = srv
		r.IDs = append(r.IDs, id)
		cfg.Holders = append(cfg.Holders, unsealer.HolderConfig{ID: id, Address: lis.Addr().String(), Shares: len(plan[name])})
	}
	r.Holders = unsealer.NewHolderSet(pki.Source("unsealer", "u1"), cfg, nil)
	tb.Cleanup(r.Holders.Close)
	return r
}

// Coordinator makes a coordinator for the fake node with default options.
func (r *Rig) Coordinator(tb testing.TB) *coordinator.Coordinator {
	tb.Helper()
	c, err := coordinator.New([]coordinator.Node{{Name: "vault-1", Vault: r.Vault}}, r.Holders, coordinator.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
