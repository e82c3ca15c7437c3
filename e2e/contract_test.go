//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/internal/testkit/vaultcontract"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// contractIP is the single Vault node of the contract test.
const contractIP = "127.0.0.121"

// TestVaultContract runs the assertions the fake Vault passes in its unit
// test (internal/testkit/vaultfake TestContract) against the real Vault v1.21.0:
// one fresh raft node, initialized, unsealed, rekeyed, cancelled and
// restarted by the suite itself.
func TestVaultContract(t *testing.T) {
	c := harness.NewTestVaultCluster(t, harness.VaultClusterOptions{Binary: harness.RequireVaultBinary(t), IPs: []string{contractIP}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n := c.Node(0)
	node, err := vaultnode.New(n.Name, n.APIAddr(), vaultnode.Options{CACert: c.CA.CertPEM, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vaultcontract.Run(t, vaultcontract.Target{Node: node, URL: n.APIAddr(), CACert: c.CA.CertPEM, Restart: func(ctx context.Context) error {
		if err := n.Restart(); err != nil {
			return err
		}
		return n.WaitAPI(ctx)
	}})
}
