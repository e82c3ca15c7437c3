// Package lograte bounds how often something a remote peer can cause is
// logged. Anyone who can reach a port can make a daemon refuse a
// handshake or a packet; one warning each would let any host fill the
// daemon's log (and disk) at the rate it can connect. A Limiter logs at
// most Burst lines per key (a source address) per Window, and the next
// line logged for a key says how many were left out before it.
package lograte

import (
	"sync"
	"time"
)

type count struct {
	start      time.Time
	logged     int
	suppressed int
}

// Limiter decides which events of each key are logged. The zero value is
// not usable: make one with New.
type Limiter[K comparable] struct {
	window time.Duration
	burst  int
	max    int

	mu sync.Mutex
	// Now is the clock; tests may replace it before first use.
	Now func() time.Time
	by  map[K]*count
}

// New returns a Limiter of burst lines per key per window, tracking at most
// max keys (beyond that it forgets them all, which at worst logs a few
// lines more).
func New[K comparable](window time.Duration, burst, max int) *Limiter[K] {
	return &Limiter[K]{window: window, burst: burst, max: max, Now: time.Now, by: map[K]*count{}}
}

// Allow reports whether an event of key is logged, and how many events of
// key were left out since the last logged one.
func (l *Limiter[K]) Allow(key K) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	c, ok := l.by[key]
	if !ok || now.Sub(c.start) >= l.window {
		if !ok && len(l.by) >= l.max {
			clear(l.by)
		}
		left := 0
		if ok {
			left = c.suppressed
		}
		l.by[key] = &count{start: now, logged: 1}
		return true, left
	}
	if c.logged < l.burst {
		c.logged++
		left := c.suppressed
		c.suppressed = 0
		return true, left
	}
	c.suppressed++
	return false, 0
}
