package holder

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/metricsrv"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Version is the holder's software version, gossiped in its metadata.
var Version = version.Get().Version

// ShutdownTimeout bounds the graceful stop: in-flight releases finish, the
// gossip leave spreads.
const ShutdownTimeout = 10 * time.Second

// OpenSealKey gets the seal key the config names.
func OpenSealKey(c Config) (shares.SealKey, error) {
	switch {
	case c.Store.SealKeyFile != "":
		return shares.LoadKeyFile(c.Store.SealKeyFile)
	case c.Store.SealKeyCredential != "":
		return shares.LoadCredential(c.Store.SealKeyCredential)
	default:
		return shares.LoadPassphraseFile(c.Store.PassphraseFile, shares.DefaultArgon2)
	}
}

// OpenStore opens the store with the config's seal key. Close the key when
// done (key.Destroy).
func OpenStore(c Config) (*shares.Store, shares.SealKey, error) {
	key, err := OpenSealKey(c)
	if err != nil {
		return nil, nil, &confload.Error{File: c.file, Err: err}
	}
	st, err := shares.OpenStore(c.Store.Dir, c.ID, key)
	if err != nil {
		key.Destroy()
		return nil, nil, &confload.Error{File: c.file, Err: err}
	}
	return st, key, nil
}

// VaultNodes builds a pinned-CA client per configured Vault node, by name.
func VaultNodes(c Config) (map[string]*vaultnode.Node, error) {
	list, err := c.Vault.Clients(c.file)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*vaultnode.Node, len(list))
	for _, n := range list {
		out[n.Name] = n
	}
	return out, nil
}

// NewEngine builds the release policy from the config.
func NewEngine(c Config) (*policy.Engine, error) {
	opts, err := c.PolicyOptions()
	if err != nil {
		return nil, err
	}
	e, err := policy.New(opts...)
	if err != nil {
		return nil, err
	}
	if c.Policy.Hold != "" {
		e.SetHold(c.Policy.Hold)
	}
	return e, nil
}

// Run serves until ctx is done, then stops gracefully. Every value sent on
// reload (SIGHUP) re-reads the certificates, the config's policy and hold.
func Run(ctx context.Context, c Config, log *slog.Logger, reload <-chan os.Signal) error {
	for _, err := range shares.HardenProcess() {
		log.Warn("memory protection unavailable", "err", err)
	}
	store, key, err := OpenStore(c)
	if err != nil {
		return err
	}
	defer key.Destroy()
	alog, err := OpenAudit(c, key, log)
	if err != nil {
		return err
	}
	defer alog.Close()
	src, err := identity.New(identity.Options{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
		CRLFile: c.TLS.CRLFile, TrustDomain: c.TrustDomain(), Logger: log})
	if err != nil {
		return &confload.Error{File: c.file, Err: err}
	}
	if src.ID().String() != c.ID {
		return confload.Errorf(c.file, "id %q differs from the certificate's ID %q (tls.cert_file %s): fix one of them", c.ID, src.ID(), c.TLS.CertFile)
	}
	engine, err := NewEngine(c)
	if err != nil {
		return &confload.Error{File: c.file, Err: err}
	}
	nodes, err := VaultNodes(c)
	if err != nil {
		return err
	}
	m := NewMetrics()
	svc, err := NewService(c.ID, store, engine, alog, nodes, c.Vault.Timeout, m, log)
	if err != nil {
		m.storeOK.Set(0)
		return fmt.Errorf("holder store %s: %w", c.Store.Dir, err)
	}
	defer svc.Close()
	m.storeOK.Set(1)
	m.certExpiry.Set(certNotAfter(c.TLS.CertFile))
	if engine.Hold() != "" {
		m.hold.Set(1)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := src.Watch(ctx); err != nil {
			log.Error("certificate watch did not start; reload with SIGHUP", "err", err)
		}
	}()

	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s (listen): %w", c.Listen, err)
	}
	srv, err := sharerpc.NewServer(sharerpc.ServerOptions{
		TLS:     src.ServerConfig(identity.AllowRoles(identity.RoleUnsealer, identity.RoleOperator, identity.RoleHolder)),
		Handler: svc, Logger: log,
	})
	if err != nil {
		lis.Close()
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()

	rpcAddr := lis.Addr().String()
	if c.AdvertiseListen != "" {
		rpcAddr = c.AdvertiseListen
	}
	peers := identity.AllowRoles(identity.RoleHolder, identity.RoleUnsealer)
	gossipSources, _ := c.Gossip.SourceCIDRs() // checked by Validate
	cluster, err := gossip.New(gossip.Config{
		Name: c.ID, BindAddr: c.Gossip.Bind, AdvertiseAddr: c.Gossip.Advertise, Seeds: c.Gossip.Seeds, SourceCIDRs: gossipSources,
		ServerTLS: src.ServerConfig(peers), ClientTLS: src.ClientConfig(peers),
		Meta: meta(svc, rpcAddr), Logger: log.With("component", "gossip"), RejoinInterval: c.Gossip.RejoinInterval,
	})
	if err != nil {
		srv.Stop()
		return fmt.Errorf("gossip on %s: %w", c.Gossip.Bind, err)
	}
	svc.OnChange = func() {
		if err := cluster.UpdateMeta(meta(svc, rpcAddr)); err != nil {
			log.Warn("failed to update gossip metadata", "err", err)
		}
	}
	go countMembers(ctx, cluster, m)

	var metricsSrv *http.Server
	if c.MetricsListen != "" {
		metricsSrv, err = metricsrv.Serve(c.MetricsListen, m.Registry, log, map[string]http.Handler{
			"/members": membersHandler(cluster),
		})
		if err != nil {
			srv.Stop()
			_ = cluster.Shutdown()
			return err
		}
	}
	svc.record(audit.Entry{Event: audit.EventStart, Decision: "ok", Peer: c.ID, Generation: mustState(svc).Current})
	log.Info("holder serving", "id", c.ID, "listen", lis.Addr().String(), "gossip", cluster.AdvertiseAddr(),
		"generation", mustState(svc).Current, "policy", engine.Summary())

	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			srv.SetServing(false)
			sctx, scancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			srv.GracefulStop(sctx)
			_ = cluster.Leave(2 * time.Second)
			_ = cluster.Shutdown()
			if metricsSrv != nil {
				_ = metricsSrv.Shutdown(sctx)
			}
			scancel()
			return nil
		case err := <-serveErr:
			_ = cluster.Shutdown()
			return fmt.Errorf("share service on %s stopped: %w", c.Listen, err)
		case <-reload:
			reloadAll(c, src, svc, m, log)
		}
	}
}

// reloadAll re-reads the certificates and the policy part of the config. A
// failure keeps what was in force and says why.
func reloadAll(c Config, src *identity.Source, svc *Service, m *Metrics, log *slog.Logger) {
	if err := src.Reload(); err != nil {
		log.Error("certificate reload failed; keeping the old ones", "err", err)
	} else {
		m.certExpiry.Set(certNotAfter(c.TLS.CertFile))
	}
	nc, err := Load(c.file, nil)
	if err != nil {
		log.Error("config reload failed; keeping the old policy", "err", err)
		return
	}
	e, err := NewEngine(nc)
	if err != nil {
		log.Error("policy reload failed; keeping the old policy", "err", err)
		return
	}
	svc.SetEngine(e)
	if err := svc.refresh(); err != nil {
		log.Error("store re-read failed; keeping the generations seen before", "err", err)
	}
	m.hold.Set(0)
	if e.Hold() != "" {
		m.hold.Set(1)
	}
	log.Info("reloaded", "policy", e.Summary())
}

func meta(svc *Service, rpcAddr string) gossip.Meta {
	st, man, idx := svc.Current()
	var h []byte
	if st.Current != 0 {
		d := man.Hash()
		h = d[:8]
	}
	return gossip.Meta{RPCAddr: rpcAddr, Generation: st.Current, Shares: idx, ManifestHash: h, Version: Version}
}

// Peer is one gossip member as `holder status` shows it.
type Peer struct {
	ID         string        `json:"id"`
	State      string        `json:"state"`
	Role       identity.Role `json:"role,omitempty"`
	Generation uint64        `json:"generation,omitempty"`
	RPCAddr    string        `json:"rpc_addr,omitempty"`
}

// membersHandler serves the gossip view as JSON on the metrics listener, for
// `holder status`. It is public information: IDs, states, generations.
func membersHandler(c *gossip.Cluster) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var out []Peer
		for _, m := range c.Members() {
			out = append(out, Peer{ID: m.Name, State: m.State.String(), Role: m.Meta.Role, Generation: m.Meta.Generation, RPCAddr: m.Meta.RPCAddr})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func mustState(svc *Service) shares.State { st, _, _ := svc.Current(); return st }

func countMembers(ctx context.Context, c *gossip.Cluster, m *Metrics) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		counts := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
		for _, mem := range c.Members() {
			counts[mem.State.String()]++
		}
		for k, v := range counts {
			m.members.WithLabelValues(k).Set(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// certNotAfter reads the leaf's NotAfter for the expiry metric (0 if the
// file cannot be read; the identity package reports that itself).
func certNotAfter(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return 0
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return 0
	}
	return float64(cert.NotAfter.Unix())
}
