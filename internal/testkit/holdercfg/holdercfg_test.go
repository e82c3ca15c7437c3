package holdercfg_test

import (
	"path/filepath"
	"testing"

	"github.com/keyshare/keyshare/internal/holder"
	"github.com/keyshare/keyshare/internal/testkit/holdercfg"
)

// TestRendersAValidConfig: what the template writes is a config the holder
// loads and validates, with every field where the holder reads it.
func TestRendersAValidConfig(t *testing.T) {
	dir := t.TempDir()
	c := holdercfg.Config{
		ID: "spiffe://keyshare.test/holder/a", Listen: "127.0.0.151:0", AdvertiseListen: "proxy.example:7400",
		GossipBind: "127.0.0.151:0", Seeds: []string{"127.0.0.152:7946"}, RejoinInterval: "1s",
		CAFile: "ca.crt", CertFile: "a.crt", KeyFile: "a.key",
		StoreDir: "store", SealKeyFile: "seal.key", AuditFile: "audit.log",
		VaultCAFile: "vault-ca.crt", VaultURL: "https://127.0.0.160:8200",
		UnsealerCIDR: "127.0.0.20/32",
		Operators:    []holdercfg.Operator{{ID: "spiffe://keyshare.test/operator/oncall", CIDR: "127.0.0.30/32"}},
		Policy:       []string{"burst: 6", "rekey_approvals: 1"},
		LogLev:       "debug",
	}
	path := filepath.Join(dir, "holder.yaml")
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := holder.LoadShape(path)
	if err != nil {
		t.Fatalf("the holder refuses the template's config: %v\n%s", err, c.YAML())
	}
	if got.ID != c.ID || got.Listen != c.Listen || got.Store.Dir != c.StoreDir || got.Policy.Burst != 6 || got.Policy.RekeyApprovals != 1 ||
		len(got.Policy.Operators) != 1 || len(got.Gossip.Seeds) != 1 || got.LogLevel != "debug" {
		t.Fatalf("loaded %+v\nfrom\n%s", got, c.YAML())
	}
}
