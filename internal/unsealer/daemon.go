package unsealer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/metricsrv"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"

	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Version is gossiped in the unsealer's metadata.
var Version = version.Get().Version

// Identity loads the unsealer's TLS identity and checks it matches the ID.
func Identity(c Config, log *slog.Logger) (*identity.Source, error) {
	src, err := identity.New(identity.Options{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
		CRLFile: c.TLS.CRLFile, TrustDomain: c.TrustDomain(), Logger: log})
	if err != nil {
		return nil, &confload.Error{File: c.file, Err: err}
	}
	if src.ID().String() != c.ID {
		return nil, confload.Errorf(c.file, "id %q differs from the certificate's ID %q (tls.cert_file %s): fix one of them", c.ID, src.ID(), c.TLS.CertFile)
	}
	return src, nil
}

// VaultNodes builds a pinned-CA client per configured node, in order.
func VaultNodes(c Config) ([]*vaultnode.Node, error) { return c.Vault.Clients(c.file) }

// Run is `unsealer run`: watch every node and unseal it, until ctx is done.
// A value on reload re-reads the certificates.
func Run(ctx context.Context, c Config, log *slog.Logger, reload <-chan os.Signal) error {
	// The coordinator holds a threshold of shares while it unseals: report
	// once, here, what memory protection is missing.
	for _, err := range shares.HardenProcess() {
		log.Warn("memory protection unavailable", "err", err)
	}
	src, err := Identity(c, log)
	if err != nil {
		return err
	}
	nodes, err := VaultNodes(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := src.Watch(ctx); err != nil {
			log.Error("certificate watch did not start; reload with SIGHUP", "err", err)
		}
	}()
	cluster, err := startGossip(c, src, log)
	if err != nil {
		return err
	}
	var members Membership
	if cluster != nil {
		defer func() {
			_ = cluster.Leave(2 * time.Second)
			_ = cluster.Shutdown()
		}()
		members = cluster
	}
	holders := NewHolderSet(src, c, members)
	defer holders.Close()
	co, reg, err := newCoordinator(ctx, c, nodes, holders, log)
	if err != nil {
		return err
	}
	var metricsSrv *http.Server
	if c.MetricsListen != "" {
		if metricsSrv, err = metricsrv.Serve(c.MetricsListen, reg, log, nil); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go func() { _ = co.Run(ctx); close(done) }()
	gossipAddr := "" // the bound address, which differs from gossip.bind when its port is 0
	if cluster != nil {
		gossipAddr = cluster.AdvertiseAddr()
	}
	log.Info("unsealer watching", "id", c.ID, "nodes", len(nodes), "holders", len(c.Holders), "gossip", c.Gossip.Bind != "",
		"gossip_addr", gossipAddr)
	for {
		select {
		case <-ctx.Done():
			<-done
			if metricsSrv != nil {
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = metricsSrv.Shutdown(sctx)
				scancel()
			}
			log.Info("stopped")
			return nil
		case <-reload:
			if err := src.Reload(); err != nil {
				log.Error("certificate reload failed; keeping the old ones", "err", err)
			} else {
				log.Info("certificates reloaded")
			}
		}
	}
}

// startGossip joins the gossip cluster, if gossip.bind is set (nil
// otherwise). Gossip is a liveness hint: the holder set never skips a
// holder or replaces its address because of it.
func startGossip(c Config, src *identity.Source, log *slog.Logger) (*gossip.Cluster, error) {
	if c.Gossip.Bind == "" {
		return nil, nil
	}
	peers := identity.AllowRoles(identity.RoleHolder, identity.RoleUnsealer)
	gossipSources, _ := c.Gossip.SourceCIDRs() // checked by Validate
	cluster, err := gossip.New(gossip.Config{
		Name: c.ID, BindAddr: c.Gossip.Bind, AdvertiseAddr: c.Gossip.Advertise, Seeds: c.Gossip.Seeds, SourceCIDRs: gossipSources,
		ServerTLS: src.ServerConfig(peers), ClientTLS: src.ClientConfig(peers),
		Meta: gossip.Meta{Version: Version}, Logger: log.With("component", "gossip"),
		RejoinInterval: c.Gossip.RejoinInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip on %s: %w", c.Gossip.Bind, err)
	}
	return cluster, nil
}

// newCoordinator builds the coordinator for nodes and holders, and the
// metrics registry it reports to.
func newCoordinator(ctx context.Context, c Config, nodes []*vaultnode.Node, holders *HolderSet, log *slog.Logger) (*coordinator.Coordinator, *prometheus.Registry, error) {
	m := coordinator.NewMetrics()
	reg, err := Registry(c, m)
	if err != nil {
		return nil, nil, err
	}
	var notifier coordinator.Notifier
	if c.WebhookURL != "" {
		notifier = coordinator.NewWebhook(ctx, c.WebhookURL, log)
	}
	var watched []coordinator.Node
	for _, n := range nodes {
		watched = append(watched, coordinator.Node{Name: n.Name, Vault: n})
	}
	co, err := coordinator.New(watched, holders, coordinator.Options{
		SafetyNetInterval: c.Watch.SafetyNetInterval,
		PollInterval:      c.Watch.PollInterval, DownInterval: c.Watch.DownInterval,
		StaleProgressAfter: c.Watch.StaleProgressAfter, HolderTimeout: c.Watch.HolderTimeout,
		Logger: log, Metrics: m, Notifier: notifier,
	})
	return co, reg, err
}

var _ coordinator.CloseWatcher = (*vaultnode.Node)(nil)
