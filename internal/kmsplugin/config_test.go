package kmsplugin

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyshare/keyshare/internal/confload"
)

// TestExampleConfigs: the shipped plugin config validates, and the
// apiserver's EncryptionConfiguration names the same provider and socket.
func TestExampleConfigs(t *testing.T) {
	c, err := Load("../../configs/kmsplugin.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../configs/k8s/encryption-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ec struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Resources  []struct {
			Resources []string `yaml:"resources"`
			Providers []struct {
				KMS *struct {
					APIVersion string `yaml:"apiVersion"`
					Name       string `yaml:"name"`
					Endpoint   string `yaml:"endpoint"`
					Timeout    string `yaml:"timeout"`
				} `yaml:"kms"`
			} `yaml:"providers"`
		} `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &ec); err != nil {
		t.Fatal(err)
	}
	if ec.Kind != "EncryptionConfiguration" || len(ec.Resources) == 0 || len(ec.Resources[0].Providers) == 0 {
		t.Fatalf("encryption-config.yaml: unexpected shape %+v", ec)
	}
	kms := ec.Resources[0].Providers[0].KMS
	if kms == nil || kms.APIVersion != "v2" || kms.Name != c.ProviderName || kms.Endpoint != "unix://"+c.Socket.Path {
		t.Fatalf("encryption-config.yaml's first provider %+v does not match the plugin's provider %q on %s", kms, c.ProviderName, c.Socket.Path)
	}
	if d, err := time.ParseDuration(kms.Timeout); err != nil || d < 3*time.Second {
		t.Fatalf("timeout %q: want at least 3s", kms.Timeout)
	}
}

func TestValidate(t *testing.T) {
	good := Default()
	good.Vault.CAFile = "/etc/ca.pem"
	good.Vault.Nodes = []confload.VaultNode{{Name: "v1", Address: "https://127.0.0.1:8200"}}
	type tc struct {
		name   string
		change func(c *Config)
		want   string
	}
	run := func(t *testing.T, c tc) {
		cfg := good
		cfg.Vault.Nodes = append([]confload.VaultNode(nil), good.Vault.Nodes...)
		c.change(&cfg)
		err := cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("err = %v, want it to mention %q", err, c.want)
		}
	}
	for _, c := range []tc{
		{name: "ok/defaults", change: func(*Config) {}},
		{name: "ok/group", change: func(c *Config) { c.Socket.Group = "kube" }},
		{name: "fail/relative-socket", change: func(c *Config) { c.Socket.Path = "kms.sock" }, want: "socket.path"},
		{name: "fail/long-socket", change: func(c *Config) { c.Socket.Path = "/" + strings.Repeat("a", 120) }, want: "too long"},
		{name: "fail/provider", change: func(c *Config) { c.ProviderName = "a b" }, want: "provider_name"},
		{name: "fail/no-ca", change: func(c *Config) { c.Vault.CAFile = "" }, want: "vault.ca_file"},
		{name: "fail/http", change: func(c *Config) { c.Vault.Nodes[0].Address = "http://127.0.0.1:8200" }, want: "https"},
		{name: "fail/no-nodes", change: func(c *Config) { c.Vault.Nodes = nil }, want: "vault.nodes"},
		{name: "fail/source", change: func(c *Config) { c.Vault.SourceAddr = "host.example" }, want: "vault.source_addr"},
		{name: "fail/mount", change: func(c *Config) { c.Vault.Mount = "../sys" }, want: "vault.mount"},
		{name: "fail/key", change: func(c *Config) { c.Vault.Key = "k/../x" }, want: "vault.key"},
		{name: "fail/token-file", change: func(c *Config) { c.Vault.TokenFile = "" }, want: "vault.token_file"},
		{name: "fail/max-age", change: func(c *Config) { c.Status.MaxAge = time.Second }, want: "max_age"},
		{name: "fail/log-level", change: func(c *Config) { c.LogLevel = "loud" }, want: "log_level"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestLoadRefusesVaultEnvironment: KEYSHARE_VAULT_* would change where the
// plugin talks to Vault; it is refused by name, while other KEYSHARE_*
// variables apply.
func TestLoadRefusesVaultEnvironment(t *testing.T) {
	c := Default()
	c.Vault.CAFile = "/etc/ca.pem"
	c.Vault.Nodes = []confload.VaultNode{{Name: "v1", Address: "https://127.0.0.1:8200"}}
	p := writeConfig(t, c)
	t.Setenv("KEYSHARE_LOG_LEVEL", "debug")
	t.Setenv("KEYSHARE_VAULT_BIN", "/usr/bin/vault") // the test suite's, not a config key
	got, err := Load(p, nil)
	if err != nil || got.LogLevel != "debug" {
		t.Fatalf("load = %+v, %v", got.LogLevel, err)
	}
	for _, k := range []string{"KEYSHARE_VAULT_NODES", "KEYSHARE_VAULT_SOURCE_ADDR", "keyshare_vault_ca_file", "KEYSHARE_VAULT_SERVER_NAME", "KEYSHARE_VAULT_TOKEN_FILE"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, "x")
			_, err := Load(p, nil)
			if err == nil || !strings.Contains(err.Error(), k) || !confload.IsConfigError(err) {
				t.Fatalf("err = %v, want a config error naming %s", err, k)
			}
		})
	}
}
