package confload

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// Defaults shared by both daemons' configs.
const (
	// DefaultGossipBind is the gossip address: port 7946, as memberlist.
	DefaultGossipBind = "0.0.0.0:7946"
	// DefaultLogLevel is info: one line per decision or state change,
	// none per poll.
	DefaultLogLevel = "info"
)

// TLS names a daemon's identity files. CRLFile is optional; once set, an
// unreadable or invalid CRL refuses every peer.
type TLS struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	CRLFile  string `mapstructure:"crl_file"`
}

// Gossip is the membership cluster section.
type Gossip struct {
	Bind           string        `mapstructure:"bind"`
	Advertise      string        `mapstructure:"advertise"`
	Seeds          []string      `mapstructure:"seeds"`
	RejoinInterval time.Duration `mapstructure:"rejoin_interval"`
	// AllowCIDRs are the source addresses gossip accepts connections from
	// (the members' hosts); empty accepts any source that holds a valid
	// certificate.
	AllowCIDRs []string `mapstructure:"allow_cidrs"`
}

// SourceCIDRs parses AllowCIDRs; a bare address is a single host.
func (g Gossip) SourceCIDRs() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range g.AllowCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, fmt.Errorf("gossip.allow_cidrs[%d] %q: want a CIDR like 10.0.0.0/24 or an address: %w", i, s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Vault lists Vault nodes and the CA their certificates chain to (pinned).
type Vault struct {
	CAFile  string        `mapstructure:"ca_file"`
	Timeout time.Duration `mapstructure:"timeout"`
	Nodes   []VaultNode   `mapstructure:"nodes"`
}

// VaultNode is one Vault server, named the same on holders and unsealers.
type VaultNode struct {
	Name    string `mapstructure:"name"`
	Address string `mapstructure:"address"`
}

// files are the required files of the TLS and Vault sections, by key.
func files(t TLS, v Vault) [][2]string {
	return [][2]string{{"tls.ca_file", t.CAFile}, {"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}, {"vault.ca_file", v.CAFile}}
}

// RequireFiles checks that the required TLS and Vault files are named.
func RequireFiles(t TLS, v Vault) error {
	for _, kv := range files(t, v) {
		if kv[1] == "" {
			return fmt.Errorf("%s: missing: name the PEM file", kv[0])
		}
	}
	return nil
}

// CheckFiles checks that the required TLS and Vault files exist.
func CheckFiles(t TLS, v Vault) error {
	for _, kv := range files(t, v) {
		if _, err := os.Stat(kv[1]); err != nil {
			return fmt.Errorf("%s: %w", kv[0], err)
		}
	}
	return nil
}

// Validate checks the node list: at least one, named, https, unique.
func (v Vault) Validate() error {
	if len(v.Nodes) == 0 {
		return errors.New("vault.nodes: list the Vault nodes (name and https address)")
	}
	seen := map[string]bool{}
	for i, n := range v.Nodes {
		if n.Name == "" || !strings.HasPrefix(n.Address, "https://") {
			return fmt.Errorf("vault.nodes[%d]: want a name and an https:// address", i)
		}
		if seen[n.Name] {
			return fmt.Errorf("vault.nodes[%d]: name %q listed twice", i, n.Name)
		}
		seen[n.Name] = true
	}
	return nil
}

// Clients builds a pinned-CA client per node, in order. Errors are config
// errors of file.
func (v Vault) Clients(file string) ([]*vaultnode.Node, error) {
	ca, err := os.ReadFile(v.CAFile)
	if err != nil {
		return nil, Errorf(file, "vault.ca_file: %w", err)
	}
	var out []*vaultnode.Node
	for _, n := range v.Nodes {
		c, err := vaultnode.New(n.Name, n.Address, vaultnode.Options{CACert: ca, Timeout: v.Timeout})
		if err != nil {
			return nil, &Error{File: file, Err: err}
		}
		out = append(out, c)
	}
	return out, nil
}
