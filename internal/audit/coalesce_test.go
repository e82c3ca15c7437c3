package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func entries(t *testing.T, p string) []Entry {
	t.Helper()
	var out []Entry
	for _, raw := range lines(t, p) {
		var e Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestDenialFloodCoalesced: N denials of two peers in one window cost
// DefaultDenyBurst lines each plus one summary line each (count, first,
// last), whatever N. Before coalescing every denial was a line: 2N lines.
func TestDenialFloodCoalesced(t *testing.T) {
	const n = 5000
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l.now = clk.now
	peers := []string{"spiffe://ks/holder/b", "spiffe://ks/unsealer/rogue"}
	logged := map[string]int{}
	for i := range n {
		for _, peer := range peers {
			w, err := l.AppendDenial(Entry{Event: EventRelease, Peer: peer, Source: "127.0.0.9", Target: "vault-1", Reason: "peer_not_allowed", Detail: "no"})
			if err != nil {
				t.Fatal(err)
			}
			if w {
				logged[peer]++
			}
		}
		if i%100 == 0 {
			clk.add(time.Second / 2) // 25 s of flood, inside one window
		}
	}
	for _, peer := range peers {
		if logged[peer] != DefaultDenyBurst {
			t.Fatalf("%s: %d denials written one by one, want %d", peer, logged[peer], DefaultDenyBurst)
		}
	}
	if got := len(lines(t, p)); got != 2*DefaultDenyBurst {
		t.Fatalf("%d lines during the window, want %d", got, 2*DefaultDenyBurst)
	}
	// The window ends: the next entry writes the summaries first.
	clk.add(DefaultDenyWindow)
	if err := l.Append(Entry{Event: EventStart, Decision: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es := entries(t, p)
	if len(es) != 2*DefaultDenyBurst+3 {
		t.Fatalf("%d lines in all, want %d", len(es), 2*DefaultDenyBurst+3)
	}
	sums := map[string]Entry{}
	for _, e := range es {
		if e.Reason == ReasonCoalesced {
			sums[e.Peer] = e
		}
	}
	for _, peer := range peers {
		s, ok := sums[peer]
		if !ok || s.Count != n-DefaultDenyBurst || s.First.IsZero() || !s.Last.After(s.First) || s.Decision != "deny" {
			t.Fatalf("summary of %s = %+v, want count %d with first < last", peer, s, n-DefaultDenyBurst)
		}
	}
	fi, _ := os.Stat(p)
	t.Logf("%d denials of 2 peers: %d lines, %d bytes", 2*n, len(es), fi.Size())
	if _, err := Verify(p, testKey); err != nil {
		t.Fatal(err)
	}
}

// TestDenialSummaryWrittenWithoutTraffic: the summary of a window comes
// when the window ends, even if nothing else is appended.
func TestDenialSummaryWrittenWithoutTraffic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetDenyLimit(100*time.Millisecond, 2)
	// The 50 denials come at one instant of the log's clock, so that they
	// fall in one window however slow the fsyncs are (with the wall clock
	// they spilled into a second window under load: 6 lines, a flake);
	// the clock then moves past the window, and the timer (real time) must
	// write the summary without another entry.
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l.mu.Lock()
	l.now = clk.now
	l.mu.Unlock()
	for range 50 {
		if _, err := l.AppendDenial(Entry{Event: EventStage, Peer: "spiffe://ks/holder/b", Reason: "peer_not_allowed"}); err != nil {
			t.Fatal(err)
		}
	}
	clk.add(100 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var es []Entry
		for _, raw := range lines(t, p) {
			var e Entry
			if json.Unmarshal(raw, &e) == nil { // a line being written does not parse yet
				es = append(es, e)
			}
		}
		if len(es) == 3 && es[2].Reason == ReasonCoalesced && es[2].Count == 48 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary line after 5 s: %d lines", len(es))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
