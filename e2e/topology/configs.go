package topology

import (
	"fmt"
	"os"
	"strings"
)

// vaultNodesYAML lists the Vault nodes for a holder or unsealer config.
func (t *Topology) vaultNodesYAML() string {
	var b strings.Builder
	for _, n := range t.Vault.Nodes() {
		fmt.Fprintf(&b, "    - {name: %s, address: %q}\n", n.Name, n.APIAddr())
	}
	return b.String()
}

// gossipSeeds are every gossip address but self, of those bound already.
func (t *Topology) gossipSeeds(self string) string {
	var seeds []string
	for _, h := range t.Holders {
		if h.GossipAddr != self && !unbound(h.GossipAddr) {
			seeds = append(seeds, h.GossipAddr)
		}
	}
	if t.gossipAddr != self && !unbound(t.gossipAddr) {
		seeds = append(seeds, t.gossipAddr)
	}
	return "[" + strings.Join(seeds, ", ") + "]"
}

func (t *Topology) writeHolderConfig(h *Holder) error {
	cfg := fmt.Sprintf(`# holder %[1]s of the local keyshare topology (written by e2e/topology)
id: %[2]s
listen: %[3]s
gossip:
  bind: %[4]s
  seeds: %[5]s
  rejoin_interval: 2s
tls:
  ca_file: %[6]s
  cert_file: %[7]s
  key_file: %[8]s
store:
  dir: %[9]s
  seal_key_file: %[10]s
audit:
  file: %[11]s
vault:
  ca_file: %[12]s
  timeout: 2s
  nodes:
%[13]s
policy:
  # Shares go to the unsealer role only from the coordinator's host.
  allow_roles:
    - {role: unsealer, cidrs: [%[14]s/32]}
  operators:
    - {id: "spiffe://%[15]s/operator/oncall", cidrs: [%[16]s/32]}
  rate_per_minute: 120
  burst: 30
  operator_rate_per_minute: %[19]d
  operator_burst: %[20]d
  # The topology has one operator identity; the two-operator rekey rule
  # is tested in cmd/holder TestHolderRekeyRelease and pkg/policy.
  rekey_approvals: 1
metrics_listen: %[17]s
log_level: %[18]s
`, h.Name, h.ID, h.Listen, h.GossipAddr, t.gossipSeeds(h.GossipAddr), t.CAPath, h.certPath, h.keyPath,
		h.StoreDir, h.SealKeyPath, h.AuditPath, t.Vault.CAPath, t.vaultNodesYAML(), CoordinatorIP,
		TrustDomain, OperatorIP, h.MetricsAddr, t.opts.LogLevel, t.opts.OperatorRatePerMinute, t.opts.OperatorBurst)
	return writeConfig(h.ConfigPath, cfg)
}

// writeUnsealerConfig writes the config of the coordinator (with gossip
// and metrics) or of the operator (neither).
func (t *Topology) writeUnsealerConfig(path, who, ip string, daemon bool) error {
	var holders strings.Builder
	for _, h := range t.Holders {
		fmt.Fprintf(&holders, "  - {id: %q, address: %q, shares: %d}\n", h.ID, h.Listen, h.Shares)
	}
	gossip, metrics := `gossip: {bind: ""}`, `metrics_listen: ""`
	if daemon {
		gossip = fmt.Sprintf("gossip:\n  bind: %s\n  seeds: %s\n  rejoin_interval: 2s", t.gossipAddr, t.gossipSeeds(t.gossipAddr))
		metrics = "metrics_listen: " + t.CoordinatorMetrics
	}
	base := strings.ReplaceAll(who, "/", "-")
	cfg := fmt.Sprintf(`# %[1]s of the local keyshare topology (written by e2e/topology)
id: spiffe://%[2]s/%[1]s
source_addr: %[3]s
%[4]s
tls:
  ca_file: %[5]s
  cert_file: %[6]s
  key_file: %[7]s
holders:
%[8]splan: {shares: 5, threshold: 3}
vault:
  ca_file: %[9]s
  timeout: 5s
  nodes:
%[10]s
watch:
  poll_interval: %[11]s
  down_interval: %[14]s
  stale_progress_after: %[15]s
  holder_timeout: 3s
%[12]s
log_level: %[13]s
`, who, TrustDomain, ip, gossip, t.CAPath, t.path("tls", base+".crt"), t.path("tls", base+".key"),
		holders.String(), t.Vault.CAPath, t.vaultNodesYAML(), t.opts.PollInterval, metrics, t.opts.LogLevel,
		t.opts.DownInterval, t.opts.StaleProgressAfter)
	return writeConfig(path, cfg)
}

func writeConfig(path, cfg string) error {
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("failed to write config %s: %w", path, err)
	}
	return nil
}
