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
	// Nothing can be observed of the idle connection from here: give the
	// watcher a moment to open it, then make sure it did not wake early.
	time.Sleep(500 * time.Millisecond)
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
