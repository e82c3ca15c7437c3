// Package holdercfg writes a holder's YAML config for tests, one template
// for every test that runs a real holder process (cmd/holder, cmd/unsealer,
// bench). configs/holder-a.yaml is the commented example for operators.
package holdercfg

import (
	"fmt"
	"os"
	"strings"
)

// Operator is one entry of policy.operators.
type Operator struct{ ID, CIDR string }

// VaultNode is one entry of vault.nodes.
type VaultNode struct{ Name, Address string }

// Config is what differs between the tests' holders. Empty optional
// fields are left out of the file, so the holder's defaults apply.
type Config struct {
	ID, Listen, AdvertiseListen string
	GossipBind                  string
	Seeds                       []string
	// RejoinInterval is gossip.rejoin_interval, e.g. "1s"; optional.
	RejoinInterval            string
	CAFile, CertFile, KeyFile string
	StoreDir, SealKeyFile     string
	AuditFile                 string
	VaultCAFile, VaultURL     string
	// UnsealerCIDR is the one grant: role unsealer from this CIDR.
	UnsealerCIDR string
	Operators    []Operator
	// Policy holds more policy lines, "key: value" each (rates, hold,
	// rekey_approvals).
	Policy                []string
	MetricsListen, LogLev string
	// CRLFile is tls.crl_file; optional.
	CRLFile string
	// VaultNodes, when set, are vault.nodes instead of VaultURL alone.
	VaultNodes []VaultNode
}

// YAML renders c.
func (c Config) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\nlisten: %s\n", c.ID, c.Listen)
	if c.AdvertiseListen != "" {
		fmt.Fprintf(&b, "advertise_listen: %q\n", c.AdvertiseListen)
	}
	fmt.Fprintf(&b, "gossip: {bind: %q, seeds: [%s]", c.GossipBind, strings.Join(c.Seeds, ", "))
	if c.RejoinInterval != "" {
		fmt.Fprintf(&b, ", rejoin_interval: %s", c.RejoinInterval)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "tls: {ca_file: %s, cert_file: %s, key_file: %s", c.CAFile, c.CertFile, c.KeyFile)
	if c.CRLFile != "" {
		fmt.Fprintf(&b, ", crl_file: %s", c.CRLFile)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "store: {dir: %s, seal_key_file: %s}\naudit: {file: %s}\n", c.StoreDir, c.SealKeyFile, c.AuditFile)
	nodes := c.VaultNodes
	if len(nodes) == 0 {
		nodes = []VaultNode{{Name: "vault-1", Address: c.VaultURL}}
	}
	fmt.Fprintf(&b, "vault:\n  ca_file: %s\n  timeout: 2s\n  nodes:\n", c.VaultCAFile)
	for _, n := range nodes {
		fmt.Fprintf(&b, "    - {name: %s, address: %q}\n", n.Name, n.Address)
	}
	fmt.Fprintf(&b, "policy:\n  allow_roles: [{role: unsealer, cidrs: [%s]}]\n", c.UnsealerCIDR)
	if len(c.Operators) > 0 {
		ops := make([]string, len(c.Operators))
		for i, o := range c.Operators {
			ops[i] = fmt.Sprintf("{id: %q, cidrs: [%s]}", o.ID, o.CIDR)
		}
		fmt.Fprintf(&b, "  operators: [%s]\n", strings.Join(ops, ", "))
	}
	for _, l := range c.Policy {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if c.MetricsListen != "" {
		fmt.Fprintf(&b, "metrics_listen: %s\n", c.MetricsListen)
	}
	if c.LogLev != "" {
		fmt.Fprintf(&b, "log_level: %s\n", c.LogLev)
	}
	return b.String()
}

// Write writes c to path, mode 0600.
func (c Config) Write(path string) error {
	if err := os.WriteFile(path, []byte(c.YAML()), 0o600); err != nil {
		return fmt.Errorf("holder config %s: %w", path, err)
	}
	return nil
}
