package unseal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/fakenode"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

// fakeNode is a fake Vault (5 shares, threshold 3) on ip and a pinned-CA
// client for it, with its keys.
func fakeNode(t *testing.T, ip string) (*vaultfake.Vault, *vaultnode.Node, []shares.Share) {
	t.Helper()
	n := fakenode.Start(t, ip, fakenode.Options{Timeout: 2 * time.Second})
	return n.Fake, n.Vault, n.Shares()
}

func TestSubmit(t *testing.T) {
	ctx := context.Background()
	t.Run("ok/threshold-unseals", func(t *testing.T) {
		fake, node, ss := fakeNode(t, "127.0.0.252")
		var seen []int
		st, err := Submit(ctx, node, ss[1:4], func(st vaultnode.Status) { seen = append(seen, st.Progress) })
		if err != nil || st.Sealed || fake.Sealed() {
			t.Fatalf("submit: sealed=%v err=%v", st.Sealed, err)
		}
		if len(seen) != 3 || fake.Stats().Submitted != 3 {
			t.Fatalf("progress calls %v, submitted %d; want one per share, 3", seen, fake.Stats().Submitted)
		}
	})
	t.Run("fail/another-key-rejected", func(t *testing.T) {
		_, node, _ := fakeNode(t, "127.0.0.252")
		_, _, other := fakeNode(t, "127.0.0.253")
		if _, err := Submit(ctx, node, other[:3], nil); !errors.Is(err, ErrRejected) {
			t.Fatalf("submit of another key's shares: %v, want ErrRejected", err)
		}
	})
	t.Run("fail/node-gone-is-not-a-rejection", func(t *testing.T) {
		fake, node, ss := fakeNode(t, "127.0.0.252")
		fake.Stop()
		_, err := Submit(ctx, node, ss[:3], nil)
		if err == nil || errors.Is(err, ErrRejected) {
			t.Fatalf("submit to a stopped node: %v, want an error that is not ErrRejected", err)
		}
	})
}
