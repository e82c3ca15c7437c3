package vaultnode_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

func TestAgainstFake(t *testing.T) {
	fake, keys, n := startFake(t, "127.0.0.61", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	st, err := n.SealStatus(ctx)
	if err != nil || !st.Sealed || !st.Initialized || st.T != 3 || st.N != 5 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if code, err := n.Health(ctx); err != nil || vaultnode.HARole(code) != "sealed" {
		t.Fatalf("health = %d, %v", code, err)
	}
	// One share, the same again (ignored), then a reset.
	if st, err = n.Unseal(ctx, keys[0]); err != nil || st.Progress != 1 || st.Nonce == "" {
		t.Fatalf("first share: %+v, %v", st, err)
	}
	if st, _ = n.Unseal(ctx, keys[0]); st.Progress != 1 {
		t.Fatalf("duplicate counted: progress %d", st.Progress)
	}
	if st, err = n.ResetUnseal(ctx); err != nil || st.Progress != 0 {
		t.Fatalf("reset: %+v, %v", st, err)
	}
	for _, k := range keys[2:] {
		st, err = n.Unseal(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
	}
	if st.Sealed {
		t.Fatalf("still sealed after 3 shares: %+v", st)
	}
	if code, _ := n.Health(ctx); vaultnode.HARole(code) != "active" {
		t.Fatalf("health after unseal = %d", code)
	}
	if fake.Stats().Wasted != 0 {
		t.Fatal("an attempt was wasted")
	}

	// A stopped node is unreachable, and that is told apart from errors.
	fake.Stop()
	_, err = n.SealStatus(ctx)
	if !vaultnode.IsUnreachable(err) {
		t.Fatalf("stopped node: err = %v, want unreachable", err)
	}

	// The pinned CA is enforced: another CA's client refuses the node.
	other, _ := devpki.NewCA("keyshare.test")
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	bad, _ := vaultnode.New("vault-1", fake.URL(), vaultnode.Options{CACert: other.CertPEM})
	if _, err := bad.SealStatus(ctx); err == nil {
		t.Fatal("node with a certificate from another CA accepted")
	}
	if _, err := vaultnode.New("vault-1", fake.URL(), vaultnode.Options{}); err == nil {
		t.Fatal("https without a pinned CA accepted")
	}
}
