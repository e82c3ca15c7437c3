package vaultnode_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// TestWatchCloseWakesOnStop: the held connection ends when the node stops,
// the watcher says so at once, and holds a new one when the node is back.
func TestWatchCloseWakesOnStop(t *testing.T) {
	fake, _, n := startFake(t, "127.0.0.62", 0)
	events := make(chan vaultnode.ConnEvent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.WatchClose(ctx, events)
	// The first event is the held connection, with the seal status read
	// on it.
	select {
	case ev := <-events:
		if !ev.Held || !ev.Status.Sealed || ev.Status.T != 3 {
			t.Fatalf("first event %+v, want held with a sealed status", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never held a connection open")
	}
	// Nothing more while the node is up.
	select {
	case ev := <-events:
		t.Fatalf("event %+v while the node was up", ev)
	case <-time.After(100 * time.Millisecond):
	}
	stopped := time.Now()
	fake.Stop()
	select {
	case ev := <-events:
		if ev.Held {
			t.Fatalf("event %+v after the stop, want the end of the held connection", ev)
		}
		t.Logf("told %s after the stop", time.Since(stopped).Round(time.Microsecond))
	case <-time.After(3 * time.Second):
		t.Fatal("no event after the node stopped")
	}
	// Back again: held again, with the restarted node's status.
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if !ev.Held || !ev.Status.Sealed {
			t.Fatalf("event %+v after the restart, want held and sealed", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not held again after the restart")
	}
}
