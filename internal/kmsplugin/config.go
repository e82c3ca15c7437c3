package kmsplugin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/logging"
)

// Defaults. Each can be overridden in the config file or by flags; the
// vault section only in the file (see Load).
const (
	// DefaultProviderName is the KMS provider's name in the apiserver's
	// EncryptionConfiguration; it is part of every stored value's prefix.
	DefaultProviderName = "keyshare"
	// DefaultSocketPath is where the apiserver dials the plugin.
	DefaultSocketPath = "/var/run/kmsplugin/keyshare.sock"
	// DefaultMount is the transit engine's mount path.
	DefaultMount = "transit"
	// DefaultKey is the transit key that wraps the apiserver's seeds.
	DefaultKey = "kubernetes"
	// DefaultTokenFile holds this host's Vault token (mode 0600).
	DefaultTokenFile = "/etc/keyshare/kms/vault-token"
	// DefaultVaultTimeout bounds one request to one Vault node.
	DefaultVaultTimeout = 3 * time.Second
	// DefaultStatusInterval is how often the round trip is re-checked while
	// healthy; the apiserver asks for Status every minute.
	DefaultStatusInterval = 20 * time.Second
	// DefaultStatusRetry is how often it is re-checked while failing, so
	// that the plugin recovers by itself within seconds.
	DefaultStatusRetry = 1 * time.Second
	// DefaultStatusMaxAge is how old the last good round trip may be for
	// Status to still answer "ok".
	DefaultStatusMaxAge = time.Minute
	// DefaultTokenCheck is how often the token file is re-read.
	DefaultTokenCheck = time.Second
	// DefaultMetricsListen serves /metrics and /healthz on loopback only.
	DefaultMetricsListen = "127.0.0.1:9760"
	// DefaultCertMount is where Vault's TLS certificate auth method is
	// mounted (auth/cert).
	DefaultCertMount = "cert"
	// DefaultGRPCTimeout bounds the gRPC connection handshake.
	DefaultGRPCTimeout = 5 * time.Second
)

// Config is the plugin's configuration (see configs/kmsplugin.yaml).
type Config struct {
	ProviderName  string       `mapstructure:"provider_name"`
	Socket        SocketConfig `mapstructure:"socket"`
	Vault         VaultConfig  `mapstructure:"vault"`
	Status        StatusConfig `mapstructure:"status"`
	MetricsListen string       `mapstructure:"metrics_listen"`
	LogLevel      string       `mapstructure:"log_level"`

	file string
}

// SocketConfig is the unix socket the apiserver dials.
type SocketConfig struct {
	Path string `mapstructure:"path"`
	// Group, if set (a name or a numeric gid), owns the socket and may use
	// it (mode 0660); otherwise only the plugin's user may (0600).
	Group string `mapstructure:"group"`
}

// VaultConfig says how to reach Vault and which key to use.
type VaultConfig struct {
	CAFile     string               `mapstructure:"ca_file"`
	ServerName string               `mapstructure:"server_name"`
	Timeout    time.Duration        `mapstructure:"timeout"`
	Nodes      []confload.VaultNode `mapstructure:"nodes"`
	// SourceAddr is this host's address: the plugin connects to Vault from
	// it, and its token is bound to it.
	SourceAddr string `mapstructure:"source_addr"`
	Mount      string `mapstructure:"mount"`
	Key        string `mapstructure:"key"`
	TokenFile  string `mapstructure:"token_file"`
	// TokenCheck is how often the token file is re-read.
	TokenCheck time.Duration `mapstructure:"token_check"`
	// Auth is "token" (read token_file) or "cert" (log in with the
	// host's certificate through Vault's cert auth method, and again
	// whenever the token expires or is revoked).
	Auth string `mapstructure:"auth"`
	// CertFile and KeyFile are the host's certificate for auth: cert.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// CertRole is the cert auth role (kmsplugin cert-role create);
	// CertMount its mount.
	CertRole  string `mapstructure:"cert_role"`
	CertMount string `mapstructure:"cert_mount"`
}

// Auth methods.
const (
	AuthToken = "token"
	AuthCert  = "cert"
)

// StatusConfig tunes the background round trip behind Status.
type StatusConfig struct {
	Interval      time.Duration `mapstructure:"interval"`
	RetryInterval time.Duration `mapstructure:"retry_interval"`
	MaxAge        time.Duration `mapstructure:"max_age"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		ProviderName: DefaultProviderName,
		Socket:       SocketConfig{Path: DefaultSocketPath},
		Vault: VaultConfig{Timeout: DefaultVaultTimeout, Mount: DefaultMount, Key: DefaultKey,
			TokenFile: DefaultTokenFile, TokenCheck: DefaultTokenCheck, Auth: AuthToken, CertMount: DefaultCertMount},
		Status:        StatusConfig{Interval: DefaultStatusInterval, RetryInterval: DefaultStatusRetry, MaxAge: DefaultStatusMaxAge},
		MetricsListen: DefaultMetricsListen,
		LogLevel:      confload.DefaultLogLevel,
	}
}

// FlagKeys maps the serve command's flags to config keys.
var FlagKeys = map[string]string{
	"log-level": "log_level", "metrics-listen": "metrics_listen", "socket": "socket.path",
	"provider-name": "provider_name",
}

// lockedEnv lists the environment variables that would set a vault.* key
// (KEYSHARE_VAULT_CA_FILE and so on): no environment variable may change
// where the plugin talks to Vault or how it checks Vault's certificate.
// Other KEYSHARE_VAULT* variables (the test suite's KEYSHARE_VAULT_BIN) are
// not config keys and are left alone.
func lockedEnv(env []string) []string {
	locked := map[string]bool{}
	t := reflect.TypeOf(VaultConfig{})
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		locked[strings.ToUpper(confload.EnvPrefix+"_VAULT_"+tag)] = true
	}
	var bad []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if locked[strings.ToUpper(k)] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}

// Load reads the config file, then KEYSHARE_* environment variables (except
// those of vault.* keys, which are refused), then flags, and validates.
func Load(path string, flags *pflag.FlagSet) (Config, error) {
	if bad := lockedEnv(os.Environ()); len(bad) > 0 {
		return Config{}, confload.Errorf(path, "environment variable %s would change how the plugin reaches vault: set vault.* in the config file only, and unset it",
			strings.Join(bad, ", "))
	}
	def := Default()
	def.file = path // not a config key: Load leaves it as it is
	return confload.LoadValidated(path, def, flags, FlagKeys)
}

// File is the config file it was loaded from.
func (c Config) File() string { return c.file }

// namePattern is what a provider name, mount or key may be: no slash
// tricks, no spaces.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks the config and names the key and the fix on error.
func (c Config) Validate() error {
	if !namePattern.MatchString(c.ProviderName) {
		return fmt.Errorf("provider_name %q: want letters, digits, '.', '_' or '-', as in the EncryptionConfiguration", c.ProviderName)
	}
	if c.Socket.Path == "" || !filepath.IsAbs(c.Socket.Path) {
		return fmt.Errorf("socket.path %q: want an absolute path, the endpoint unix://<path> of the EncryptionConfiguration", c.Socket.Path)
	}
	if len(c.Socket.Path) > 100 {
		return fmt.Errorf("socket.path %q: too long for a unix socket (at most 100 bytes)", c.Socket.Path)
	}
	v := c.Vault
	if v.CAFile == "" {
		return errors.New("vault.ca_file: missing: name the PEM file of the CA that signed the vault servers' certificates")
	}
	if err := (confload.Vault{Nodes: v.Nodes}).Validate(); err != nil {
		return err
	}
	if v.SourceAddr != "" {
		if _, err := netip.ParseAddr(v.SourceAddr); err != nil {
			return fmt.Errorf("vault.source_addr %q: want this host's IP address: %w", v.SourceAddr, err)
		}
	}
	if !namePattern.MatchString(v.Mount) {
		return fmt.Errorf("vault.mount %q: want the transit mount path, such as transit", v.Mount)
	}
	if !namePattern.MatchString(v.Key) {
		return fmt.Errorf("vault.key %q: want the transit key name, such as kubernetes", v.Key)
	}
	switch v.Auth {
	case AuthToken:
		if v.TokenFile == "" {
			return errors.New("vault.token_file: missing: name the file `kmsplugin token create` wrote")
		}
	case AuthCert:
		if v.CertFile == "" || v.KeyFile == "" || v.CertRole == "" {
			return errors.New("vault.auth cert: set vault.cert_file, vault.key_file (the host's certificate) and vault.cert_role")
		}
		if !namePattern.MatchString(v.CertMount) || !namePattern.MatchString(v.CertRole) {
			return fmt.Errorf("vault.cert_mount %q, vault.cert_role %q: want plain names", v.CertMount, v.CertRole)
		}
	default:
		return fmt.Errorf("vault.auth %q: want token (a token file) or cert (log in with the host's certificate)", v.Auth)
	}
	if v.Timeout <= 0 || v.TokenCheck <= 0 {
		return errors.New("vault.timeout and vault.token_check: want positive durations")
	}
	s := c.Status
	if s.Interval <= 0 || s.RetryInterval <= 0 || s.MaxAge < s.Interval {
		return errors.New("status: interval and retry_interval must be positive and max_age at least interval")
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics_listen %q: want host:port: %w", c.MetricsListen, err)
		}
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// Addrs lists the Vault nodes' addresses in order.
func (v VaultConfig) Addrs() []string {
	out := make([]string, 0, len(v.Nodes))
	for _, n := range v.Nodes {
		out = append(out, n.Address)
	}
	return out
}

// HostLabel is how messages name this host: its source address, or
// "this host" when the OS picks it.
func (v VaultConfig) HostLabel() string {
	if v.SourceAddr != "" {
		return v.SourceAddr
	}
	return "this host"
}
