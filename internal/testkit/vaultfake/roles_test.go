package vaultfake_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultcontract"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
)

// TestRoles runs the sys/health assertions the real Vault passes in e2e
// (TestActiveNodePreferred) against three fakes: one active, two standbys.
func TestRoles(t *testing.T) {
	ca, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]*vaultfake.Vault{}
	var c vaultcontract.Cluster
	for i := range 3 {
		f := vaultfake.StartUnsealed(t, ca, fmt.Sprintf("127.0.0.%d", 185+i), fmt.Sprintf("roles-%d", i))
		byAddr[f.URL()] = f
		if i == 0 {
			c.Active = f.URL()
			continue
		}
		f.SetStandby(true)
		c.Standbys = append(c.Standbys, f.URL())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	c.HTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.HTTP.CloseIdleConnections)
	c.Seal = func(_ context.Context, addr string) error { byAddr[addr].Seal(); return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vaultcontract.RunRoles(t, ctx, c)
}
