package holder

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/logging"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Defaults. Each can be overridden in the config file, by KEYSHARE_*
// environment variables or by flags.
const (
	// DefaultListen is the share service address: all interfaces, port 7400.
	DefaultListen = "0.0.0.0:7400"
	// DefaultStoreDir holds the sealed shares (mode 0700).
	DefaultStoreDir = "/var/lib/keyshare/holder"
	// DefaultAuditFile is the hash-chained audit log.
	DefaultAuditFile = "/var/lib/keyshare/holder/audit.log"
	// DefaultVaultTimeout bounds the holder's own seal-status check.
	DefaultVaultTimeout = 2 * time.Second
	// DefaultMetricsListen serves /metrics on loopback only.
	DefaultMetricsListen = "127.0.0.1:9740"
)

// Config is the holder's configuration (see configs/holder-a.yaml).
type Config struct {
	// ID is this holder's SPIFFE ID; its certificate must carry it.
	ID     string `mapstructure:"id"`
	Listen string `mapstructure:"listen"`
	// AdvertiseListen is the share-service address gossiped to the
	// coordinators, when they must dial another address than Listen (NAT,
	// a TCP proxy). Empty gossips the bound address.
	AdvertiseListen string          `mapstructure:"advertise_listen"`
	Gossip          confload.Gossip `mapstructure:"gossip"`
	TLS             confload.TLS    `mapstructure:"tls"`
	Store           StoreConfig     `mapstructure:"store"`
	Audit           AuditConfig     `mapstructure:"audit"`
	Vault           confload.Vault  `mapstructure:"vault"`
	Policy          PolicyConfig    `mapstructure:"policy"`
	// MetricsListen serves Prometheus metrics; empty turns them off.
	MetricsListen string `mapstructure:"metrics_listen"`
	LogLevel      string `mapstructure:"log_level"`

	file string
}

// StoreConfig is where the sealed shares live and where their key comes
// from: exactly one of SealKeyFile, SealKeyCredential, PassphraseFile.
type StoreConfig struct {
	Dir               string `mapstructure:"dir"`
	SealKeyFile       string `mapstructure:"seal_key_file"`
	SealKeyCredential string `mapstructure:"seal_key_credential"`
	PassphraseFile    string `mapstructure:"passphrase_file"`
}

// AuditConfig is the audit log.
type AuditConfig struct {
	File string `mapstructure:"file"`
}

// PolicyConfig is the release policy.
type PolicyConfig struct {
	AllowRoles            []Grant       `mapstructure:"allow_roles"`
	AllowIDs              []Grant       `mapstructure:"allow_ids"`
	Operators             []Grant       `mapstructure:"operators"`
	RatePerMinute         float64       `mapstructure:"rate_per_minute"`
	Burst                 int           `mapstructure:"burst"`
	OperatorRatePerMinute float64       `mapstructure:"operator_rate_per_minute"`
	OperatorBurst         int           `mapstructure:"operator_burst"`
	MaxStatusAge          time.Duration `mapstructure:"max_status_age"`
	// RekeyApprovals distinct operator identities must ask for the same
	// rekey nonce within RekeyApprovalWindow before any gets shares.
	RekeyApprovals      int           `mapstructure:"rekey_approvals"`
	RekeyApprovalWindow time.Duration `mapstructure:"rekey_approval_window"`
	// Hold, when set, denies every release with this reason (maintenance).
	Hold string `mapstructure:"hold"`
}

// Grant is an allowed role or ID and the source CIDRs it is bound to.
type Grant struct {
	Role  string   `mapstructure:"role"`
	ID    string   `mapstructure:"id"`
	CIDRs []string `mapstructure:"cidrs"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		Listen:        DefaultListen,
		Gossip:        confload.Gossip{Bind: confload.DefaultGossipBind},
		Store:         StoreConfig{Dir: DefaultStoreDir},
		Audit:         AuditConfig{File: DefaultAuditFile},
		Vault:         confload.Vault{Timeout: DefaultVaultTimeout},
		MetricsListen: DefaultMetricsListen,
		LogLevel:      confload.DefaultLogLevel,
		Policy: PolicyConfig{
			RatePerMinute: policy.DefaultRate, Burst: policy.DefaultBurst,
			OperatorRatePerMinute: policy.DefaultOperatorRate, OperatorBurst: policy.DefaultOperatorBurst,
			MaxStatusAge:   policy.DefaultMaxStatusAge,
			RekeyApprovals: policy.DefaultRekeyApprovals, RekeyApprovalWindow: policy.DefaultRekeyApprovalWindow,
		},
	}
}

// FlagKeys maps holder flags to config keys.
var FlagKeys = map[string]string{
	"listen": "listen", "log-level": "log_level", "metrics-listen": "metrics_listen",
	"store-dir": "store.dir", "seal-key-file": "store.seal_key_file",
}

// Load reads the config file, the environment and the flags, validates,
// and checks that the files it names exist.
func Load(path string, flags *pflag.FlagSet) (Config, error) {
	return load(path, flags, Config.CheckFiles)
}

// LoadShape reads and validates a config without checking that the files
// it names exist (for example configs and linting).
func LoadShape(path string) (Config, error) { return load(path, nil) }

func load(path string, flags *pflag.FlagSet, checks ...func(Config) error) (Config, error) {
	def := Default()
	def.file = path // not a config key: Load leaves it as it is
	return confload.LoadValidated(path, def, flags, FlagKeys, checks...)
}

// CheckFiles checks that the certificate files the config names exist.
func (c Config) CheckFiles() error {
	return confload.CheckFiles(c.TLS, c.Vault)
}

// Validate checks the config and names the key and the fix on error.
func (c Config) Validate() error {
	if c.ID == "" {
		return errors.New("id: missing: set it to this holder's SPIFFE ID, e.g. spiffe://keyshare.example/holder/a")
	}
	if _, err := identity.ParseAs(c.ID, identity.RoleHolder); err != nil {
		return fmt.Errorf("id: %w: want spiffe://<trust-domain>/holder/<name>", err)
	}
	if c.AdvertiseListen != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseListen); err != nil {
			return fmt.Errorf("advertise_listen %q: want host:port: %w", c.AdvertiseListen, err)
		}
	}
	for key, addr := range map[string]string{"listen": c.Listen, "gossip.bind": c.Gossip.Bind} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port: %w", key, addr, err)
		}
	}
	if err := confload.RequireFiles(c.TLS, c.Vault); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{c.Store.SealKeyFile, c.Store.SealKeyCredential, c.Store.PassphraseFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("store: set exactly one of seal_key_file, seal_key_credential, passphrase_file (make a key with 'holder keygen')")
	}
	if c.Store.Dir == "" || c.Audit.File == "" {
		return errors.New("store.dir and audit.file must be set")
	}
	if err := c.Vault.Validate(); err != nil {
		return err
	}
	if _, err := c.Gossip.SourceCIDRs(); err != nil {
		return err
	}
	if err := c.Policy.validateGrants(); err != nil {
		return err
	}
	if _, err := c.PolicyOptions(); err != nil {
		return err
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// validateGrants names the key of a grant the policy engine would refuse:
// one without cidrs (there is no "any source" default) or one for holders
// (holders never receive shares).
func (p PolicyConfig) validateGrants() error {
	for _, l := range []struct {
		key    string
		grants []Grant
	}{{"policy.allow_roles", p.AllowRoles}, {"policy.allow_ids", p.AllowIDs}} {
		for i, g := range l.grants {
			who := g.Role
			if g.ID != "" {
				who = g.ID
			}
			if len(g.CIDRs) == 0 {
				return fmt.Errorf("%s[%d] (%s): cidrs is missing: write the coordinators' source addresses, "+
					"e.g. {role: unsealer, cidrs: [10.0.0.20/32]}; a grant without cidrs no longer means any source "+
					"(write cidrs: [0.0.0.0/0, \"::/0\"] to allow any source on purpose)", l.key, i, who)
			}
			if identity.Role(g.Role) == identity.RoleHolder || identity.HasRole(g.ID, identity.RoleHolder) {
				return fmt.Errorf("%s[%d] (%s): %w", l.key, i, who, policy.ErrHolderGrant)
			}
		}
	}
	return nil
}

// TrustDomain is the trust domain of the holder's ID ("" if the ID does
// not parse; Validate says why).
func (c Config) TrustDomain() string {
	id, err := identity.Parse(c.ID)
	if err != nil {
		return ""
	}
	return id.TrustDomain().Name()
}

// PolicyOptions turns the policy section into engine options and checks
// them by building an engine.
func (c Config) PolicyOptions() ([]policy.Option, error) {
	p := c.Policy
	opts := []policy.Option{policy.TrustDomain(c.TrustDomain()),
		policy.RateLimit(p.RatePerMinute, p.Burst),
		policy.OperatorRateLimit(p.OperatorRatePerMinute, p.OperatorBurst),
		policy.MaxStatusAge(p.MaxStatusAge),
		policy.RekeyApprovals(p.RekeyApprovals, p.RekeyApprovalWindow)}
	for _, g := range p.AllowRoles {
		opts = append(opts, policy.AllowRole(identity.Role(g.Role), g.CIDRs...))
	}
	for _, g := range p.AllowIDs {
		opts = append(opts, policy.AllowID(g.ID, g.CIDRs...))
	}
	for _, g := range p.Operators {
		opts = append(opts, policy.AllowOperator(g.ID, g.CIDRs...))
	}
	var names []string
	for _, v := range c.Vault.Nodes {
		names = append(names, v.Name)
	}
	opts = append(opts, policy.KnownTargets(names...))
	if _, err := policy.New(opts...); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return opts, nil
}

// sourceAddr turns a peer address into the netip form the policy wants.
func sourceAddr(ap netip.AddrPort) netip.Addr { return ap.Addr().Unmap() }
