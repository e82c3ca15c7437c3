package vaultfake_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

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
	vaultcontract.Run(t, vaultcontract.Target{Node: node, URL: fake.URL(), CACert: ca.CertPEM, Restart: func(context.Context) error {
		fake.Stop()
		return fake.Start()
	}})
}
