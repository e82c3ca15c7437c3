package fakenode_test

import (
	"context"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/fakenode"
)

// TestStart: the client reaches the fake over TLS with the pinned CA, and
// the keys, in index order, unseal it at the threshold; an uninitialized
// fake has none.
func TestStart(t *testing.T) {
	ctx := context.Background()
	n := fakenode.Start(t, "127.0.0.237", fakenode.Options{})
	ss := n.Shares()
	if len(ss) != 5 || len(n.Raw) != 5 {
		t.Fatalf("%d shares from %d keys, want 5", len(ss), len(n.Raw))
	}
	for i, s := range ss {
		if s.Index != uint8(i+1) || string(s.Value) != string(n.Raw[i]) {
			t.Fatalf("share %d has index %d or the wrong key", i, s.Index)
		}
	}
	for i, s := range ss[2:] {
		st, err := n.Vault.Unseal(ctx, s.Value)
		if err != nil {
			t.Fatalf("unseal with share %d: %v", s.Index, err)
		}
		if want := i < 2; st.Sealed != want {
			t.Fatalf("after %d shares sealed=%v, want %v", i+1, st.Sealed, want)
		}
	}
	if n.Fake.Sealed() {
		t.Fatal("fake still sealed after the threshold")
	}

	u := fakenode.Start(t, "127.0.0.238", fakenode.Options{Uninitialized: true, CA: n.CA})
	st, err := u.Vault.SealStatus(ctx)
	if err != nil || st.Initialized || len(u.Raw) != 0 || u.CA != n.CA {
		t.Fatalf("uninitialized fake: %+v, %v, %d keys", st, err, len(u.Raw))
	}
}
