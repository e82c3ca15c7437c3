package vaultfake_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultcontract"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// TestContract runs the assertions the real Vault v1.21.0 passes in e2e
// (e2e/contract_test.go) against the fake.
func TestContract(t *testing.T) {
	ca, err := devpki.NewCA("vault.test")
	if err != nil {
		t.Fatal(err)
	}
	const ip = "127.0.0.181"
	leaf, err := ca.IssueID("vault", "contract", net.ParseIP(ip))
	if err != nil {
		t.Fatal(err)
	}
	fake := vaultfake.NewUninitialized(ip+":0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	node, err := vaultnode.New("fake", fake.URL(), vaultnode.Options{CACert: ca.CertPEM})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	vaultcontract.Run(t, vaultcontract.Target{Node: node, URL: fake.URL(), HTTP: hc, Restart: func(ctx context.Context) error {
		fake.Stop()
		if err := fake.Start(); err != nil {
			return err
		}
		// Kept-alive connections were cut: wait until it answers.
		for {
			if _, err := node.SealStatus(ctx); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}})
}
