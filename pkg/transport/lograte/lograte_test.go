package lograte

import (
	"testing"
	"time"
)

// TestBurstPerWindowPerKey: burst lines per key per window; the first line
// after a quiet spell says how many were left out; keys do not share a
// budget; more keys than max are forgotten, never refused.
func TestBurstPerWindowPerKey(t *testing.T) {
	now := time.Unix(0, 0)
	l := New[string](time.Minute, 3, 2)
	l.Now = func() time.Time { return now }
	logged := 0
	for range 10 {
		if ok, _ := l.Allow("a"); ok {
			logged++
		}
	}
	if logged != 3 {
		t.Fatalf("%d of 10 logged within a window, want 3", logged)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares the first key's budget")
	}
	now = now.Add(time.Minute)
	if ok, left := l.Allow("a"); !ok || left != 7 {
		t.Fatalf("after the window: logged %v, left out %d; want true, 7", ok, left)
	}
	if ok, _ := l.Allow("c"); !ok { // third key: the map is cleared, not full
		t.Fatal("a new key beyond max was refused")
	}
}
