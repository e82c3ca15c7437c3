package holder

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/metricsrv"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Run serves until ctx is done, then stops gracefully. Every value sent on
// reload (SIGHUP) re-reads the certificates, the config's policy and hold.
//
// The steps, in order: open the sealed store, the audit log and the
// identity (open); serve the share service (serve); join gossip (join);
// serve metrics (serveMetrics); then wait for a stop or a reload (loop).
// A step that fails undoes the ones before it.
func Run(ctx context.Context, c Config, log *slog.Logger, reload <-chan os.Signal) error {
	for _, err := range shares.HardenProcess() {
		log.Warn("memory protection unavailable", "err", err)
	}
	d := &daemon{c: c, log: log}
	defer d.close()
	if err := d.open(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := d.src.Watch(ctx); err != nil {
			log.Error("certificate watch did not start; reload with SIGHUP", "err", err)
		}
	}()
	for _, step := range []func() error{d.serve, d.join, d.serveMetrics} {
		if err := step(); err != nil {
			return err
		}
	}
	go countMembers(ctx, d.cluster, d.m)
	st := mustState(d.svc)
	d.svc.record(audit.Entry{Event: audit.EventStart, Decision: "ok", Peer: c.ID, Generation: st.Current})
	log.Info("holder serving", "id", c.ID, "listen", d.lis.Addr().String(), "gossip", d.cluster.AdvertiseAddr(),
		"generation", st.Current, "policy", d.svc.engine.Load().Summary())
	return d.loop(ctx, reload)
}

// daemon is a running holder's parts, in the order Run builds them. close
// releases whatever was built.
type daemon struct {
	c   Config
	log *slog.Logger

	key        shares.SealKey
	alog       *audit.Log
	src        *identity.Source
	m          *Metrics
	svc        *Service
	lis        net.Listener
	srv        *sharerpc.Server
	serveErr   chan error
	cluster    *gossip.Cluster
	metricsSrv *http.Server
}

// open opens the store with the seal key, the audit log, the TLS identity
// (whose ID must be the config's), the policy and the share service.
func (d *daemon) open() error {
	c := d.c
	store, key, err := OpenStore(c)
	if err != nil {
		return err
	}
	d.key = key
	if d.alog, err = OpenAudit(c, key, store, d.log); err != nil {
		return err
	}
	d.src, err = identity.New(identity.Options{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
		CRLFile: c.TLS.CRLFile, TrustDomain: c.TrustDomain(), Logger: d.log})
	if err != nil {
		return &confload.Error{File: c.file, Err: err}
	}
	if d.src.ID().String() != c.ID {
		return confload.Errorf(c.file, "id %q differs from the certificate's ID %q (tls.cert_file %s): fix one of them", c.ID, d.src.ID(), c.TLS.CertFile)
	}
	engine, err := NewEngine(c)
	if err != nil {
		return &confload.Error{File: c.file, Err: err}
	}
	nodes, err := VaultNodes(c)
	if err != nil {
		return err
	}
	d.m = NewMetrics()
	if d.svc, err = NewService(c.ID, store, engine, d.alog, nodes, c.Vault.Timeout, d.m, d.log); err != nil {
		d.m.storeOK.Set(0)
		return fmt.Errorf("holder store %s: %w", c.Store.Dir, err)
	}
	d.m.storeOK.Set(1)
	d.m.certExpiry.Set(metricsrv.CertNotAfter(c.TLS.CertFile))
	if engine.Hold() != "" {
		d.m.hold.Set(1)
	}
	return nil
}

// serve listens on the share service address and serves it in the
// background; its end is reported on serveErr.
func (d *daemon) serve() error {
	var err error
	if d.lis, err = net.Listen("tcp", d.c.Listen); err != nil {
		return fmt.Errorf("failed to listen on %s (listen): %w", d.c.Listen, err)
	}
	d.srv, err = sharerpc.NewServer(sharerpc.ServerOptions{
		TLS:     d.src.ServerConfig(identity.AllowRoles(identity.RoleUnsealer, identity.RoleOperator, identity.RoleHolder)),
		Handler: d.svc, Logger: d.log,
	})
	if err != nil {
		d.lis.Close()
		return err
	}
	d.serveErr = make(chan error, 1)
	go func() { d.serveErr <- d.srv.Serve(d.lis) }()
	return nil
}

// join starts gossip with this holder's metadata, and keeps the metadata
// up to date as the store's generation changes.
func (d *daemon) join() error {
	c := d.c
	rpcAddr := d.lis.Addr().String()
	if c.AdvertiseListen != "" {
		rpcAddr = c.AdvertiseListen
	}
	peers := identity.AllowRoles(identity.GossipRoles...)
	gossipSources, _ := c.Gossip.SourceCIDRs() // checked by Validate
	cluster, err := gossip.New(gossip.Config{
		Name: c.ID, BindAddr: c.Gossip.Bind, AdvertiseAddr: c.Gossip.Advertise, Seeds: c.Gossip.Seeds, SourceCIDRs: gossipSources,
		ServerTLS: d.src.ServerConfig(peers), ClientTLS: d.src.ClientConfig(peers),
		Meta: meta(d.svc, rpcAddr), Logger: d.log.With("component", "gossip"), RejoinInterval: c.Gossip.RejoinInterval,
	})
	if err != nil {
		return fmt.Errorf("gossip on %s: %w", c.Gossip.Bind, err)
	}
	d.cluster = cluster
	d.svc.SetOnChange(func() {
		if err := cluster.UpdateMeta(meta(d.svc, rpcAddr)); err != nil {
			d.log.Warn("failed to update gossip metadata", "err", err)
		}
	})
	return nil
}

// serveMetrics serves Prometheus metrics and the gossip view, if
// configured.
func (d *daemon) serveMetrics() error {
	if d.c.MetricsListen == "" {
		return nil
	}
	var err error
	d.metricsSrv, err = metricsrv.Serve(d.c.MetricsListen, d.m.Registry, d.log, map[string]http.Handler{
		"/members": membersHandler(d.cluster),
	})
	return err
}

// loop waits for the end (ctx done, or the share service stopped) and
// reloads on every value of reload.
func (d *daemon) loop(ctx context.Context, reload <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down")
			return nil
		case err := <-d.serveErr:
			d.srv = nil // stopped already
			return fmt.Errorf("share service on %s stopped: %w", d.c.Listen, err)
		case <-reload:
			reloadAll(d.c, d.src, d.svc, d.m, d.log)
		}
	}
}

// close stops what was started, newest first: in-flight releases finish
// (bounded by ShutdownTimeout), the gossip leave spreads, then the service,
// the audit log and the seal key are closed.
func (d *daemon) close() {
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if d.srv != nil {
		d.srv.SetServing(false)
		d.srv.GracefulStop(sctx)
	}
	if d.cluster != nil {
		_ = d.cluster.Leave(2 * time.Second)
		_ = d.cluster.Shutdown()
	}
	if d.metricsSrv != nil {
		_ = d.metricsSrv.Shutdown(sctx)
	}
	if d.svc != nil {
		d.svc.Close()
	}
	if d.alog != nil {
		d.alog.Close()
	}
	if d.key != nil {
		d.key.Destroy()
	}
}
