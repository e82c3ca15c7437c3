package topology

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
	"github.com/keyshare/keyshare/internal/unsealer"
)

// TestUnsealerConfig: what UnsealerConfig writes, as the coordinator's
// config and as the operator's, is a config the unsealer loads and
// validates, with every field where the unsealer reads it.
func TestUnsealerConfig(t *testing.T) {
	base := UnsealerConfig{
		ID: "spiffe://keyshare.test/unsealer/u1", SourceAddr: "127.0.0.20",
		CAFile: "ca.crt", CertFile: "u1.crt", KeyFile: "u1.key",
		Holders: []UnsealerHolder{
			{ID: "spiffe://keyshare.test/holder/a", Address: "127.0.0.21:7400", Shares: 2},
			{ID: "spiffe://keyshare.test/holder/b", Address: "127.0.0.22:7400", Shares: 2},
			{ID: "spiffe://keyshare.test/holder/c", Address: "127.0.0.23:7400", Shares: 1},
		},
		VaultCAFile: "vault-ca.crt",
		VaultNodes:  []holdercfg.VaultNode{{Name: "vault-1", Address: "https://127.0.0.11:8200"}, {Name: "vault-2", Address: "https://127.0.0.12:8200"}},
		LogLevel:    "debug",
	}
	type tc struct {
		edit  func(*UnsealerConfig)
		check func(t *testing.T, got unsealer.Config)
	}
	run := func(t *testing.T, tc tc) {
		c := base
		tc.edit(&c)
		path := filepath.Join(t.TempDir(), "unsealer.yaml")
		if err := c.Write(path); err != nil {
			t.Fatal(err)
		}
		got, err := unsealer.LoadShape(path, nil)
		if err != nil {
			t.Fatalf("the unsealer refuses the config: %v\n%s", err, c.YAML())
		}
		if got.ID != c.ID || got.SourceAddr != c.SourceAddr || len(got.Holders) != 3 || got.Holders[2].Shares != 1 ||
			len(got.Vault.Nodes) != 2 || got.Vault.Nodes[1].Address != "https://127.0.0.12:8200" || got.LogLevel != "debug" ||
			got.Watch.HolderTimeout != 3*time.Second {
			t.Fatalf("loaded %+v\nfrom\n%s", got, c.YAML())
		}
		tc.check(t, got)
	}
	tests := map[string]tc{
		"ok/coordinator": {
			edit: func(c *UnsealerConfig) {
				c.GossipBind, c.GossipSeeds, c.MetricsListen = "127.0.0.20:7946", []string{"127.0.0.21:7946", "127.0.0.22:7946"}, "127.0.0.20:9741"
				c.PollInterval, c.DownInterval, c.StaleProgressAfter = time.Second, 100*time.Millisecond, 15*time.Second
				c.CRLFile = "crl.pem"
			},
			check: func(t *testing.T, got unsealer.Config) {
				if got.Gossip.Bind != "127.0.0.20:7946" || len(got.Gossip.Seeds) != 2 || got.Gossip.RejoinInterval != 2*time.Second ||
					got.MetricsListen != "127.0.0.20:9741" || got.TLS.CRLFile != "crl.pem" ||
					got.Watch.PollInterval != time.Second || got.Watch.DownInterval != 100*time.Millisecond || got.Watch.StaleProgressAfter != 15*time.Second {
					t.Fatalf("coordinator config loaded as %+v", got)
				}
			},
		},
		"ok/operator has no gossip, metrics or watch overrides": {
			edit: func(*UnsealerConfig) {},
			check: func(t *testing.T, got unsealer.Config) {
				def := unsealer.Default()
				if got.Gossip.Bind != "" || got.MetricsListen != "" || got.TLS.CRLFile != "" || got.Watch.PollInterval != def.Watch.PollInterval ||
					got.Watch.StaleProgressAfter != def.Watch.StaleProgressAfter {
					t.Fatalf("operator config loaded as %+v", got)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}
}
