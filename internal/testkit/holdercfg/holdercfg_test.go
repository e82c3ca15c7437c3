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

// TestRendersCRLAndVaultNodes: the optional CRL file and a list of Vault
// nodes (the e2e topology's three) land where the holder reads them; without
// VaultNodes, VaultURL is the one node vault-1.
func TestRendersCRLAndVaultNodes(t *testing.T) {
	c := holdercfg.Config{
		ID: "spiffe://keyshare.test/holder/a", Listen: "127.0.0.151:0", GossipBind: "127.0.0.151:0",
		CAFile: "ca.crt", CertFile: "a.crt", KeyFile: "a.key", CRLFile: "crl.pem",
		StoreDir: "store", SealKeyFile: "seal.key", AuditFile: "audit.log",
		VaultCAFile:  "vault-ca.crt",
		VaultNodes:   []holdercfg.VaultNode{{Name: "vault-1", Address: "https://127.0.0.11:8200"}, {Name: "vault-2", Address: "https://127.0.0.12:8200"}},
		UnsealerCIDR: "127.0.0.20/32",
	}
	path := filepath.Join(t.TempDir(), "holder.yaml")
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := holder.LoadShape(path)
	if err != nil {
		t.Fatalf("the holder refuses the template's config: %v\n%s", err, c.YAML())
	}
	if got.TLS.CRLFile != "crl.pem" || len(got.Vault.Nodes) != 2 || got.Vault.Nodes[1].Name != "vault-2" || got.Vault.Nodes[1].Address != "https://127.0.0.12:8200" {
		t.Fatalf("loaded tls %+v, vault nodes %+v\nfrom\n%s", got.TLS, got.Vault.Nodes, c.YAML())
	}
	c.CRLFile, c.VaultNodes, c.VaultURL = "", nil, "https://127.0.0.160:8200"
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	if got, err = holder.LoadShape(path); err != nil {
		t.Fatalf("the holder refuses the template's config without CRL and nodes: %v\n%s", err, c.YAML())
	}
	if got.TLS.CRLFile != "" || len(got.Vault.Nodes) != 1 || got.Vault.Nodes[0].Name != "vault-1" {
		t.Fatalf("without CRL and nodes: tls %+v, nodes %+v\n%s", got.TLS, got.Vault.Nodes, c.YAML())
	}
}
