package unsealer_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/rig"
)

// addrs: the fake Vault on .85, holders on .86-.88, the coordinator on .80.
var addrs = rig.Addrs{Vault: "127.0.0.85", Holders: [3]string{"127.0.0.86", "127.0.0.87", "127.0.0.88"}, Source: "127.0.0.80"}

// TestUnsealOverMTLS: real holders, real mutual TLS, the fake Vault; any
// two holders suffice, one does not.
func TestUnsealOverMTLS(t *testing.T) {
	r := rig.New(t, addrs)
	c := r.Coordinator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, took, err := c.UnsealOnce(ctx, "vault-1")
	if err != nil || !ok {
		t.Fatalf("all holders up: unsealed=%v err=%v", ok, err)
	}
	t.Logf("unsealed in %s with 3 holders", took)

	r.Servers["c"].Stop()
	r.Fake.Seal()
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		t.Fatalf("holder c down: unsealed=%v err=%v", ok, err)
	}
	r.Servers["b"].Stop()
	r.Fake.Seal()
	before := r.Fake.Stats().Submitted
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err == nil || ok {
		t.Fatal("unsealed with holder a alone")
	}
	if r.Fake.Stats().Submitted != before {
		t.Fatal("shares submitted with only one holder up")
	}
	if r.Fake.Stats().Wasted != 0 {
		t.Fatal("an unseal attempt was wasted")
	}
}

// BenchmarkSealedToUnsealed is the time from the poll that sees the node
// sealed to its confirmed unseal, with 3 holders on loopback mTLS and the
// fake Vault (manifests, releases with the holders' own Vault check, 3
// submissions, a confirming status).
//
//	go test -run '^$' -bench SealedToUnsealed -benchtime 200x ./internal/unsealer/
func BenchmarkSealedToUnsealed(b *testing.B) {
	r := rig.New(b, addrs)
	c := r.Coordinator(b)
	ctx := context.Background()
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r.Fake.Seal()
		if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

// BenchmarkHolderRelease is one Release from a real holder over an open
// mutual-TLS connection, including the holder's own seal-status check of
// the (fake) Vault node, the policy decision and the fsynced audit entry.
//
//	go test -run '^$' -bench HolderRelease -benchtime 300x ./internal/unsealer/
func BenchmarkHolderRelease(b *testing.B) {
	r := rig.New(b, addrs)
	c, err := r.Holders.Client(r.IDs[0])
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		ss, err := c.Release(ctx, "vault-1", 1)
		if err != nil || len(ss) != 2 {
			b.Fatalf("release: %d shares, %v", len(ss), err)
		}
	}
}
