package holder

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/metricsrv"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/internal/version"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/gossip"
	"github.com/keyshare/keyshare/pkg/transport/identity"
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

// reloadAll re-reads the certificates and the policy part of the config. A
// failure keeps what was in force and says why.
func reloadAll(c Config, src *identity.Source, svc *Service, m *Metrics, log *slog.Logger) {
	if err := src.Reload(); err != nil {
		log.Error("certificate reload failed; keeping the old ones", "err", err)
	} else {
		m.certExpiry.Set(metricsrv.CertNotAfter(c.TLS.CertFile))
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
