// Package unsealer wires the coordinator daemon and the operator commands:
// configuration, the holder set (gossip membership with static addresses as
// fallback), the Vault nodes, metrics, and status.
package unsealer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Defaults. Each can be overridden in the config file, by KEYSHARE_*
// environment variables or by flags.
const (
	// DefaultVaultTimeout bounds one request to a Vault node.
	DefaultVaultTimeout = 2 * time.Second
	// DefaultMetricsListen serves /metrics on loopback only.
	DefaultMetricsListen = "127.0.0.1:9750"
)

// Config is the unsealer's configuration (see configs/unsealer.yaml).
type Config struct {
	ID string `mapstructure:"id"`
	// SourceAddr is the local address to connect to holders from, when the
	// holders bind this credential to an address. Empty lets the OS pick.
	SourceAddr string          `mapstructure:"source_addr"`
	Gossip     confload.Gossip `mapstructure:"gossip"`
	TLS        confload.TLS    `mapstructure:"tls"`
	Holders    []HolderConfig  `mapstructure:"holders"`
	Vault      confload.Vault  `mapstructure:"vault"`
	Plan       PlanConfig      `mapstructure:"plan"`
	Watch      WatchConfig     `mapstructure:"watch"`
	// WebhookURL receives sealed, unsealed and cannot_unseal events.
	WebhookURL    string `mapstructure:"webhook_url"`
	MetricsListen string `mapstructure:"metrics_listen"`
	LogLevel      string `mapstructure:"log_level"`

	file string
}

// HolderConfig is one holder of the deployment.
type HolderConfig struct {
	ID      string `mapstructure:"id"`
	Address string `mapstructure:"address"`
	// Shares is how many shares init deals to this holder.
	Shares int `mapstructure:"shares"`
}

// PlanConfig is the split used by init and rekey; the per-holder counts are
// in Holders.
type PlanConfig struct {
	Shares    int  `mapstructure:"shares"`
	Threshold int  `mapstructure:"threshold"`
	Fragile   bool `mapstructure:"allow_fragile"`
}

// WatchConfig tunes the coordinator loop.
type WatchConfig struct {
	SafetyNetInterval  time.Duration `mapstructure:"safety_net_interval"`
	PollInterval       time.Duration `mapstructure:"poll_interval"`
	DownInterval       time.Duration `mapstructure:"down_interval"`
	StaleProgressAfter time.Duration `mapstructure:"stale_progress_after"`
	HolderTimeout      time.Duration `mapstructure:"holder_timeout"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		Gossip:        confload.Gossip{Bind: confload.DefaultGossipBind},
		Vault:         confload.Vault{Timeout: DefaultVaultTimeout},
		Plan:          PlanConfig{Shares: shares.DefaultShares, Threshold: shares.DefaultThreshold},
		MetricsListen: DefaultMetricsListen,
		LogLevel:      confload.DefaultLogLevel,
		Watch: WatchConfig{
			SafetyNetInterval: coordinator.DefaultSafetyNetInterval,
			PollInterval:      coordinator.DefaultPollInterval, DownInterval: coordinator.DefaultDownInterval,
			StaleProgressAfter: coordinator.DefaultStaleProgressAfter, HolderTimeout: coordinator.DefaultHolderTimeout,
		},
	}
}

// FlagKeys maps unsealer flags to config keys.
var FlagKeys = map[string]string{"log-level": "log_level", "metrics-listen": "metrics_listen", "source-addr": "source_addr"}

// Load reads the config file, the environment and the flags, validates, and
// checks that the files it names exist.
func Load(path string, flags *pflag.FlagSet) (Config, error) {
	return load(path, flags, func(c Config) error { return confload.CheckFiles(c.TLS, c.Vault) })
}

// LoadShape reads and validates without checking that files exist.
func LoadShape(path string, flags *pflag.FlagSet) (Config, error) { return load(path, flags) }

func load(path string, flags *pflag.FlagSet, checks ...func(Config) error) (Config, error) {
	def := Default()
	def.file = path // not a config key: Load leaves it as it is
	return confload.LoadValidated(path, def, flags, FlagKeys, checks...)
}

// File is the config file it was loaded from.
func (c Config) File() string { return c.file }

// TrustDomain is the trust domain of the unsealer's ID ("" if the ID does
// not parse; Validate says why).
func (c Config) TrustDomain() string {
	id, err := identity.Parse(c.ID)
	if err != nil {
		return ""
	}
	return id.TrustDomain().Name()
}

// Validate checks the config and names the key and the fix on error.
func (c Config) Validate() error {
	self, err := identity.ParseAs(c.ID, identity.RoleUnsealer, identity.RoleOperator)
	if err != nil {
		return fmt.Errorf("id: %w: want spiffe://<trust-domain>/unsealer/<name> (or /operator/<name> for break-glass use)", err)
	}
	if err := confload.RequireFiles(c.TLS, c.Vault); err != nil {
		return err
	}
	if c.SourceAddr != "" {
		if _, err := netip.ParseAddr(c.SourceAddr); err != nil {
			return fmt.Errorf("source_addr %q: want an IP address: %w", c.SourceAddr, err)
		}
	}
	if c.Gossip.Bind != "" {
		if _, _, err := net.SplitHostPort(c.Gossip.Bind); err != nil {
			return fmt.Errorf("gossip.bind %q: want host:port: %w", c.Gossip.Bind, err)
		}
	}
	if _, err := c.Gossip.SourceCIDRs(); err != nil {
		return err
	}
	if len(c.Holders) < 2 {
		return errors.New("holders: list every holder (id, address, shares); at least 2")
	}
	seen := map[string]bool{}
	for i, h := range c.Holders {
		if _, err := identity.ParseIn(h.ID, self.TrustDomain(), identity.RoleHolder); err != nil {
			return fmt.Errorf("holders[%d].id: %w: want spiffe://%s/holder/<name>", i, err, self.TrustDomain().Name())
		}
		if _, _, err := net.SplitHostPort(h.Address); err != nil {
			return fmt.Errorf("holders[%d].address %q: want host:port: %w", i, h.Address, err)
		}
		if seen[h.ID] {
			return fmt.Errorf("holders[%d]: %s listed twice", i, h.ID)
		}
		seen[h.ID] = true
	}
	if err := c.SharePlan().Validate(); err != nil {
		return fmt.Errorf("plan and holders[].shares: %w", err)
	}
	if err := c.Vault.Validate(); err != nil {
		return err
	}
	if c.Watch.SafetyNetInterval <= 0 || c.Watch.PollInterval <= 0 || c.Watch.DownInterval <= 0 || c.Watch.StaleProgressAfter <= 0 || c.Watch.HolderTimeout <= 0 {
		return errors.New("watch: every interval must be positive")
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// SharePlan is the allotment plan from the plan section and the holders.
func (c Config) SharePlan() shares.Plan {
	p := shares.Plan{Shares: c.Plan.Shares, Threshold: c.Plan.Threshold, AllowFragile: c.Plan.Fragile}
	for _, h := range c.Holders {
		p.Holders = append(p.Holders, shares.Allotment{Holder: h.ID, Count: h.Shares})
	}
	return p
}
