package vaultnode_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// startFake starts a fake Vault (5 shares, threshold 3, sealed) on ip and
// returns it, its keys and a client for it with timeout (the default if 0).
func startFake(t *testing.T, ip string, timeout time.Duration) (*vaultfake.Vault, [][]byte, *vaultnode.Node) {
	t.Helper()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueID("vault", "v1", net.ParseIP(ip))
	if err != nil {
		t.Fatal(err)
	}
	fake, keys, err := vaultfake.New(ip+":0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	n, err := vaultnode.New("vault-1", fake.URL(), vaultnode.Options{CACert: ca.CertPEM, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return fake, keys, n
}

// TestSealStatusAcrossRestart: the kept-alive seal-status connection of a
// node that restarted is not an error: the next status is the new
// process's (sealed), and a stopped node reads as unreachable.
func TestSealStatusAcrossRestart(t *testing.T) {
	fake, keys, n := startFake(t, "127.0.0.67", 2*time.Second)
	ctx := context.Background()
	for _, k := range keys[:3] {
		if _, err := n.Unseal(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := n.SealStatus(ctx); err != nil || st.Sealed {
		t.Fatalf("after 3 shares: %+v, %v", st, err)
	}
	for i := range 3 {
		fake.Stop()
		if err := fake.Start(); err != nil {
			t.Fatal(err)
		}
		if st, err := n.SealStatus(ctx); err != nil || !st.Sealed {
			t.Fatalf("restart %d: %+v, %v; want the restarted node's sealed status", i+1, st, err)
		}
	}
	fake.Stop()
	if _, err := n.SealStatus(ctx); !vaultnode.IsUnreachable(err) {
		t.Fatalf("stopped node: %v, want unreachable", err)
	}
}

// TestSealStatusConcurrent: callers at once (a holder checking the node for
// several releases) all get an answer; one uses the kept-alive connection,
// the others the pooled client.
func TestSealStatusConcurrent(t *testing.T) {
	_, _, n := startFake(t, "127.0.0.68", 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				st, err := n.SealStatus(ctx)
				if err == nil && !st.Sealed {
					t.Error("fake reported unsealed")
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
