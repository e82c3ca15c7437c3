package holder

import (
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyshare/keyshare/pkg/shares"
)

// TestOnChangeSetWhileServing: the daemon hooks gossip to the service after
// the share service already serves, so a Stage or Commit can refresh the
// service while the hook is being set. Under -race this failed while the
// hook was a plain field; the hook set is called for a later change.
func TestOnChangeSetWhileServing(t *testing.T) {
	key, err := shares.KeyFromBytes(make([]byte, shares.KeyLen))
	if err != nil {
		t.Fatal(err)
	}
	st, err := shares.OpenStore(filepath.Join(t.TempDir(), "store"), "spiffe://ks.test/holder/a", key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService("spiffe://ks.test/holder/a", st, nil, nil, nil, time.Second, NewMetrics(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	done := make(chan error, 1)
	go func() {
		for range 50 {
			if err := svc.refresh(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var calls atomic.Int32
	svc.SetOnChange(func() { calls.Add(1) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	if err := svc.refresh(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != before+1 {
		t.Fatalf("OnChange called %d times by one refresh; want 1", calls.Load()-before)
	}
}
