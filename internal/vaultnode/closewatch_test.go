package vaultnode_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/devpki"
	"github.com/keyshare/keyshare/internal/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// TestWatchCloseWakesOnStop: the held connection ends when the node stops,
// and the watcher says so at once.
func TestWatchCloseWakesOnStop(t *testing.T) {
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.IssueID("vault", "v1", net.ParseIP("127.0.0.62"))
	fake, _, err := vaultfake.New("127.0.0.62:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	n, err := vaultnode.New("vault-1", fake.URL(), vaultnode.Options{CACert: ca.CertPEM})
	if err != nil {
		t.Fatal(err)
	}
	wake := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.WatchClose(ctx, wake)
	// Wait for the watcher's idle connection, and make sure it did not
	// wake while the node was up.
	deadline := time.Now().Add(10 * time.Second)
	for fake.IdleConns() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never held a connection open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-wake:
		t.Fatal("woke while the node was up")
	default:
	}
	stopped := time.Now()
	fake.Stop()
	select {
	case <-wake:
		t.Logf("woke %s after the stop", time.Since(stopped).Round(time.Microsecond))
	case <-time.After(3 * time.Second):
		t.Fatal("no wake after the node stopped")
	}
}
