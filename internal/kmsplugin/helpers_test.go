package kmsplugin

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func osChmod(p string, m os.FileMode) error { return os.Chmod(p, m) }
func osRemove(p string) error               { return os.Remove(p) }

// writeConfig writes c as a YAML config file and returns its path.
func writeConfig(t *testing.T, c Config) string {
	t.Helper()
	nodes := []map[string]string{}
	for _, n := range c.Vault.Nodes {
		nodes = append(nodes, map[string]string{"name": n.Name, "address": n.Address})
	}
	doc := map[string]any{
		"provider_name": c.ProviderName,
		"socket":        map[string]any{"path": c.Socket.Path},
		"vault": map[string]any{"ca_file": c.Vault.CAFile, "nodes": nodes, "source_addr": c.Vault.SourceAddr,
			"token_file": c.Vault.TokenFile, "mount": c.Vault.Mount, "key": c.Vault.Key},
		"metrics_listen": c.MetricsListen,
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kmsplugin.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
