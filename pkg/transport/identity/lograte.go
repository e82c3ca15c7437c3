package identity

import (
	"net"
	"sync"
	"time"
)

// Refused handshakes are logged at most refusalBurst times per source
// address per refusalWindow: anyone who can reach a holder's port can make
// it refuse a handshake, so one warning each would let any host fill the
// holder's log (and disk) at the rate it can connect. The next line logged
// for a source says how many were left out before it.
const (
	refusalWindow = time.Minute
	refusalBurst  = 5
	// maxRefusalSources bounds the sources tracked; beyond it they are
	// forgotten, which at worst logs a few lines more.
	maxRefusalSources = 4096
)

type refusalCount struct {
	start      time.Time
	logged     int
	suppressed int
}

// refusalLimiter decides which refused handshakes are logged.
type refusalLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*refusalCount
}

func newRefusalLimiter() *refusalLimiter {
	return &refusalLimiter{now: time.Now, by: map[string]*refusalCount{}}
}

// allow reports whether a refusal of remote (host:port) is logged, and how
// many refusals of its host were left out since the last logged one.
func (l *refusalLimiter) allow(remote string) (bool, int) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c, ok := l.by[host]
	if !ok || now.Sub(c.start) >= refusalWindow {
		if !ok && len(l.by) >= maxRefusalSources {
			clear(l.by)
		}
		left := 0
		if ok {
			left = c.suppressed
		}
		l.by[host] = &refusalCount{start: now, logged: 1}
		return true, left
	}
	if c.logged < refusalBurst {
		c.logged++
		left := c.suppressed
		c.suppressed = 0
		return true, left
	}
	c.suppressed++
	return false, 0
}
