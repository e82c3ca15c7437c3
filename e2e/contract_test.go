//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
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
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool()}}}
	t.Cleanup(hc.CloseIdleConnections)
	vaultcontract.Run(t, vaultcontract.Target{Node: node, URL: n.APIAddr(), HTTP: hc, Restart: func(ctx context.Context) error {
		if err := n.Restart(); err != nil {
			return err
		}
		if err := n.WaitAPI(ctx); err != nil {
			return err
		}
		// keyshare's client may hold a connection the restart cut.
		return harness.PollEvery(ctx, 20*time.Millisecond, "keyshare's client to reach "+n.Name, func() (bool, error) {
			_, err := node.SealStatus(ctx)
			return err == nil, err
		})
	}})
}
