package vaultfake

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
)

// StartUnsealed starts an initialized, unsealed node (5 shares, threshold
// 3) on ip with a certificate from ca named name, stopped when the test
// ends.
func StartUnsealed(tb testing.TB, ca *devpki.CA, ip, name string) *Vault {
	tb.Helper()
	leaf, err := ca.IssueID("vault", name, net.ParseIP(ip))
	if err != nil {
		tb.Fatal(err)
	}
	f, _, err := New(ip+":0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Stop)
	f.Unseal()
	return f
}
