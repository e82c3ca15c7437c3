package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// VaultNode is one Vault server of a VaultCluster: its addresses, files and
// process. Index is 0-based; Name is "vault-<Index+1>".
type VaultNode struct {
	Index       int
	Name        string
	IP          string
	APIPort     int
	ClusterPort int

	// Dir holds everything of this node: DataDir (raft), the config file,
	// the TLS files and the log.
	Dir        string
	DataDir    string
	ConfigPath string
	CertPath   string
	KeyPath    string

	// Process runs `vault server -config=ConfigPath`.
	Process *Process

	cluster  *VaultCluster
	clientMu sync.Mutex
	client   *api.Client // shared by the clones Client returns
}

// APIAddr is the node's API URL, e.g. https://127.0.0.101:40123.
func (n *VaultNode) APIAddr() string {
	return "https://" + net.JoinHostPort(n.IP, strconv.Itoa(n.APIPort))
}

// ClusterAddr is the node's cluster (raft and forwarding) URL.
func (n *VaultNode) ClusterAddr() string {
	return "https://" + net.JoinHostPort(n.IP, strconv.Itoa(n.ClusterPort))
}

// String returns the node's name and API address, for messages.
func (n *VaultNode) String() string { return n.Name + " (" + n.APIAddr() + ")" }

// prepareNodeFiles creates the node's directories and issues its server
// certificate, valid for its loopback address.
func prepareNodeFiles(n *VaultNode, ca *devpki.CA) error {
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return fmt.Errorf("failed to create data dir of %s: %w", n.Name, err)
	}
	leaf, err := ca.IssueID("vault", n.Name, net.ParseIP(n.IP))
	if err != nil {
		return fmt.Errorf("failed to issue certificate for %s: %w", n.Name, err)
	}
	n.CertPath, n.KeyPath, err = leaf.WriteFiles(n.Dir, "tls")
	if err != nil {
		return fmt.Errorf("failed to write certificate of %s: %w", n.Name, err)
	}
	return nil
}

// vaultConfig is what the HCL of one node is made from.
type vaultConfig struct {
	node   *VaultNode
	peers  []*VaultNode // the other nodes, for retry_join
	caPath string
	// clientCAPath, if set, becomes tls_client_ca_file on the listener.
	// Vault then asks for (but does not require) client certificates.
	clientCAPath string
	// perfMultiplier is raft's performance_multiplier; 0 keeps Vault's
	// default (5, tuned for production networks).
	perfMultiplier int
	// listenerExtra is written as is inside the listener block.
	listenerExtra string
}

// hcl renders the node's server configuration.
func (c vaultConfig) hcl() string {
	n := c.node
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Written by the keyshare e2e harness for %s.\n", n.Name)
	w("ui            = false\n")
	w("disable_mlock = true\n")
	w("log_level     = \"info\"\n")
	w("api_addr      = %q\n", n.APIAddr())
	w("cluster_addr  = %q\n", n.ClusterAddr())
	w("cluster_name  = \"keyshare-e2e\"\n\n")

	w("storage \"raft\" {\n")
	w("  path    = %q\n", n.DataDir)
	w("  node_id = %q\n", n.Name)
	if c.perfMultiplier > 0 {
		w("  performance_multiplier = %d\n", c.perfMultiplier)
	}
	for _, p := range c.peers {
		w("\n  retry_join {\n")
		w("    leader_api_addr     = %q\n", p.APIAddr())
		w("    leader_ca_cert_file = %q\n", c.caPath)
		w("  }\n")
	}
	w("}\n\n")

	w("listener \"tcp\" {\n")
	w("  address         = %q\n", net.JoinHostPort(n.IP, strconv.Itoa(n.APIPort)))
	w("  cluster_address = %q\n", net.JoinHostPort(n.IP, strconv.Itoa(n.ClusterPort)))
	w("  tls_cert_file   = %q\n", n.CertPath)
	w("  tls_key_file    = %q\n", n.KeyPath)
	w("  tls_min_version = \"tls12\"\n")
	if c.clientCAPath != "" {
		w("  tls_client_ca_file = %q\n", c.clientCAPath)
	}
	if c.listenerExtra != "" {
		w("  %s\n", strings.TrimSpace(c.listenerExtra))
	}
	w("}\n")
	return b.String()
}

// write writes the rendered configuration to the node's ConfigPath.
func (c vaultConfig) write() error {
	if err := os.WriteFile(c.node.ConfigPath, []byte(c.hcl()), 0o600); err != nil {
		return fmt.Errorf("failed to write config of %s: %w", c.node.Name, err)
	}
	return nil
}

// newVaultNode lays out the paths of node i under base; ports come later.
func newVaultNode(c *VaultCluster, i int, ip, base string) *VaultNode {
	name := "vault-" + strconv.Itoa(i+1)
	dir := filepath.Join(base, name)
	n := &VaultNode{
		Index:      i,
		Name:       name,
		IP:         ip,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "vault.hcl"),
		cluster:    c,
	}
	n.Process = &Process{
		Name:    name,
		Path:    c.opts.Binary,
		Args:    []string{"server", "-config=" + n.ConfigPath},
		Dir:     dir,
		LogPath: filepath.Join(dir, "vault.log"),
		// Vault reads VAULT_API_ADDR, VAULT_RAFT_NODE_ID and the like
		// before its config file, so none of the caller's VAULT_* may leak.
		Env:         envWithout("VAULT_"),
		StopTimeout: c.opts.StopTimeout,
	}
	return n
}

// envWithout returns the harness's environment minus variables whose names
// start with prefix.
func envWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
