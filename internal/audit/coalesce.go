package audit

import (
	"fmt"
	"time"
)

// Denial coalescing. Any certificate of the deployment's CA can reach the
// share service and be denied in a loop; written one by one, with an fsync
// each, the denials would fill the holder's disk (about 1 MB/s) and stop
// its releases. Instead each peer gets DefaultDenyBurst lines per
// DefaultDenyWindow; further denials in the window are counted, and one
// summary line (Reason "coalesced", Count, First, Last) is written when the
// window ends. A flood thus costs at most DefaultDenyBurst+1 lines per peer
// per window.
const (
	// DefaultDenyWindow is the window over which a peer's denials are
	// counted.
	DefaultDenyWindow = time.Minute
	// DefaultDenyBurst is how many denials of one peer per window get a line
	// of their own (and a warning in the daemon's log).
	DefaultDenyBurst = 5
	// maxDenyPeers bounds the peers tracked at once; beyond it, the denials
	// of untracked peers share one bucket.
	maxDenyPeers = 1024
)

// ReasonCoalesced is the Reason of a summary line.
const ReasonCoalesced = "coalesced"

type denyBucket struct {
	start      time.Time // window start
	written    int
	suppressed uint64
	first      time.Time
	last       time.Time
	sample     Entry // the last suppressed denial
}

type coalescer struct {
	window  time.Duration
	burst   int
	buckets map[string]*denyBucket
	timer   *time.Timer
}

func newCoalescer(window time.Duration, burst int) *coalescer {
	return &coalescer{window: window, burst: burst, buckets: map[string]*denyBucket{}}
}

// SetDenyLimit changes the coalescing window and burst (tests, tuning).
func (l *Log) SetDenyLimit(window time.Duration, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.denied.window, l.denied.burst = window, max(burst, 1)
}

// AppendDenial records a denial unless its peer is over its burst in the
// current window, in which case it is counted for the window's summary
// line. written says whether e got a line of its own: log the denial (to
// slog) only then, so the daemon's log is bounded the same way.
func (l *Log) AppendDenial(e Entry) (written bool, err error) {
	e.Decision = "deny"
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.flushLocked(false); err != nil {
		return false, err
	}
	now := l.now().UTC()
	c := l.denied
	k := e.Peer
	if k == "" {
		k = "source:" + e.Source
	}
	b, ok := c.buckets[k]
	if !ok {
		if len(c.buckets) >= maxDenyPeers {
			k = "*"
			b = c.buckets[k]
		}
		if b == nil {
			b = &denyBucket{start: now}
			c.buckets[k] = b
		}
	}
	if b.written < c.burst {
		b.written++
		e.Time = now
		return true, l.appendLocked(e)
	}
	if b.suppressed == 0 {
		b.first = now
		l.armLocked(b.start.Add(c.window).Sub(now))
	}
	b.suppressed++
	b.last = now
	b.sample = e
	return false, nil
}

// armLocked makes sure summaries are written within d even if no other
// entry comes.
func (l *Log) armLocked(d time.Duration) {
	if l.denied.timer != nil {
		return
	}
	l.denied.timer = time.AfterFunc(max(d, time.Millisecond), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.denied.timer = nil
		if l.f == nil {
			return
		}
		_ = l.flushLocked(false) // an error shows again on the next append
	})
}

// flushLocked writes the summary of every bucket whose window is over (of
// every bucket when all is set) and forgets those buckets.
func (l *Log) flushLocked(all bool) error {
	c := l.denied
	if len(c.buckets) == 0 {
		return nil
	}
	now := l.now().UTC()
	pending := false
	for k, b := range c.buckets {
		if !all && now.Sub(b.start) < c.window {
			pending = pending || b.suppressed > 0
			continue
		}
		if b.suppressed > 0 {
			s := b.sample
			sum := Entry{Event: s.Event, Peer: s.Peer, Source: s.Source, Target: s.Target, Generation: s.Generation,
				Decision: "deny", Reason: ReasonCoalesced, Count: b.suppressed, First: b.first, Last: b.last,
				Detail: fmt.Sprintf("%d more denials of this peer in %s were not written one by one (last: %s: %s)",
					b.suppressed, c.window, s.Reason, s.Detail)}
			if err := l.appendLocked(sum); err != nil {
				return err
			}
		}
		delete(c.buckets, k)
	}
	if pending && c.timer == nil {
		l.armLocked(c.window / 4)
	}
	return nil
}
