package topology

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
)

// vaultNodesYAML lists the Vault nodes for a kmsplugin config.
func (t *Topology) vaultNodesYAML() string {
	var b strings.Builder
	for _, n := range t.vaultNodes() {
		fmt.Fprintf(&b, "    - {name: %s, address: %q}\n", n.Name, n.Address)
	}
	return b.String()
}

// vaultNodes are the Vault nodes, by name and API address.
func (t *Topology) vaultNodes() []holdercfg.VaultNode {
	var out []holdercfg.VaultNode
	for _, n := range t.Vault.Nodes() {
		out = append(out, holdercfg.VaultNode{Name: n.Name, Address: n.APIAddr()})
	}
	return out
}

// gossipSeeds are every gossip address but self, of those bound already.
func (t *Topology) gossipSeeds(self string) []string {
	var seeds []string
	for _, h := range t.Holders {
		if h.GossipAddr != self && !unbound(h.GossipAddr) {
			seeds = append(seeds, h.GossipAddr)
		}
	}
	if t.gossipAddr != self && !unbound(t.gossipAddr) {
		seeds = append(seeds, t.gossipAddr)
	}
	return seeds
}

// writeHolderConfig writes h's config. Shares go to the unsealer role only
// from the coordinator's host. The topology has one operator identity; the
// two-operator rekey rule is tested in cmd/holder TestHolderRekeyRelease and
// pkg/policy.
func (t *Topology) writeHolderConfig(h *Holder) error {
	return holdercfg.Config{
		ID: h.ID, Listen: h.Listen,
		GossipBind: h.GossipAddr, Seeds: t.gossipSeeds(h.GossipAddr), RejoinInterval: "2s",
		CAFile: t.CAPath, CertFile: h.certPath, KeyFile: h.keyPath,
		StoreDir: h.StoreDir, SealKeyFile: h.SealKeyPath, AuditFile: h.AuditPath,
		VaultCAFile: t.Vault.CAPath, VaultNodes: t.vaultNodes(),
		UnsealerCIDR: CoordinatorIP + "/32",
		Operators:    []holdercfg.Operator{{ID: "spiffe://" + TrustDomain + "/operator/oncall", CIDR: OperatorIP + "/32"}},
		Policy: []string{"rate_per_minute: 120", "burst: 30",
			fmt.Sprintf("operator_rate_per_minute: %d", t.opts.OperatorRatePerMinute),
			fmt.Sprintf("operator_burst: %d", t.opts.OperatorBurst), "rekey_approvals: 1"},
		MetricsListen: h.MetricsAddr, LogLev: t.opts.LogLevel,
	}.Write(h.ConfigPath)
}

// writeUnsealerConfig writes the config of the coordinator (with gossip
// and metrics) or of the operator (neither).
func (t *Topology) writeUnsealerConfig(path, who, ip string, daemon bool) error {
	base := strings.ReplaceAll(who, "/", "-")
	c := UnsealerConfig{
		ID: "spiffe://" + TrustDomain + "/" + who, SourceAddr: ip,
		CAFile: t.CAPath, CertFile: t.path("tls", base+".crt"), KeyFile: t.path("tls", base+".key"),
		VaultCAFile: t.Vault.CAPath, VaultNodes: t.vaultNodes(),
		PollInterval: t.opts.PollInterval, DownInterval: t.opts.DownInterval, StaleProgressAfter: t.opts.StaleProgressAfter,
		LogLevel: t.opts.LogLevel,
	}
	for _, h := range t.Holders {
		c.Holders = append(c.Holders, UnsealerHolder{ID: h.ID, Address: h.Listen, Shares: h.Shares})
	}
	if daemon {
		c.GossipBind, c.GossipSeeds, c.MetricsListen = t.gossipAddr, t.gossipSeeds(t.gossipAddr), t.CoordinatorMetrics
	}
	return c.Write(path)
}

// UnsealerConfig is an unsealer's YAML config (the coordinator's or the
// operator's), for the topology and for tests that deploy keyshare their
// own way (e2e/pki_deploy_test.go). Empty optional fields are left out.
type UnsealerConfig struct {
	ID, SourceAddr string
	// GossipBind and GossipSeeds turn gossip on; empty, it is off (the
	// operator's config).
	GossipBind  string
	GossipSeeds []string
	CAFile      string
	CertFile    string
	KeyFile     string
	CRLFile     string // optional
	Holders     []UnsealerHolder
	VaultCAFile string
	VaultNodes  []holdercfg.VaultNode
	// PollInterval, DownInterval and StaleProgressAfter are the watch
	// section's; zero leaves one out.
	PollInterval, DownInterval, StaleProgressAfter time.Duration
	// MetricsListen empty turns the metrics off.
	MetricsListen string
	LogLevel      string
}

// UnsealerHolder is one entry of holders.
type UnsealerHolder struct {
	ID, Address string
	Shares      int
}

// YAML renders c.
func (c UnsealerConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\nsource_addr: %s\n", c.ID, c.SourceAddr)
	if c.GossipBind == "" {
		b.WriteString("gossip: {bind: \"\"}\n")
	} else {
		fmt.Fprintf(&b, "gossip:\n  bind: %s\n  seeds: [%s]\n  rejoin_interval: 2s\n", c.GossipBind, strings.Join(c.GossipSeeds, ", "))
	}
	fmt.Fprintf(&b, "tls:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n", c.CAFile, c.CertFile, c.KeyFile)
	if c.CRLFile != "" {
		fmt.Fprintf(&b, "  crl_file: %s\n", c.CRLFile)
	}
	b.WriteString("holders:\n")
	for _, h := range c.Holders {
		fmt.Fprintf(&b, "  - {id: %q, address: %q, shares: %d}\n", h.ID, h.Address, h.Shares)
	}
	fmt.Fprintf(&b, "plan: {shares: 5, threshold: 3}\nvault:\n  ca_file: %s\n  timeout: 5s\n  nodes:\n", c.VaultCAFile)
	for _, n := range c.VaultNodes {
		fmt.Fprintf(&b, "    - {name: %s, address: %q}\n", n.Name, n.Address)
	}
	b.WriteString("watch:\n")
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"poll_interval", c.PollInterval}, {"down_interval", c.DownInterval}, {"stale_progress_after", c.StaleProgressAfter}} {
		if d.v != 0 {
			fmt.Fprintf(&b, "  %s: %s\n", d.key, d.v)
		}
	}
	fmt.Fprintf(&b, "  holder_timeout: 3s\nmetrics_listen: %q\nlog_level: %s\n", c.MetricsListen, c.LogLevel)
	return b.String()
}

// Write writes c to path, mode 0600.
func (c UnsealerConfig) Write(path string) error { return writeConfig(path, c.YAML()) }

func writeConfig(path, cfg string) error {
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("failed to write config %s: %w", path, err)
	}
	return nil
}
