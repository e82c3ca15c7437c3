package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// Watch modes of a node, in NodeState.Mode and the watch_mode metric.
const (
	// ModeHeld: a connection to the node is held open, and its end is the
	// signal of a restart; seal-status is polled only as a safety net,
	// every SafetyNetInterval.
	ModeHeld = "held"
	// ModePoll: no connection can be held (or none lasts: something in
	// between closes idle connections), so seal-status is polled every
	// PollInterval.
	ModePoll = "poll"
	// ModeFast: the node is down, sealed, or its held connection just
	// ended: seal-status is polled every DownInterval.
	ModeFast = "fast"
)

// Modes lists the watch modes.
var Modes = []string{ModeHeld, ModePoll, ModeFast}

// CloseWatcher is an optional ability of a VaultNode: it holds an idle
// connection to the node and reports when one is held (with the seal status
// read on it) and when it ends (a stop or restart), so that the watcher
// polls at once instead of at its next tick. Sends block until received.
type CloseWatcher interface {
	WatchClose(ctx context.Context, events chan<- vaultnode.ConnEvent)
}

// nodeWatch is one node's watcher: its loop state, owned by one goroutine.
type nodeWatch struct {
	c *Coordinator
	n Node
	// closeWatch: the node's connection is watched (CloseWatcher).
	closeWatch bool

	wasSealed, wasUninit, wasDown bool
	backoff                       time.Duration
	rejected                      int // consecutive refusals of a full verified threshold
	// rejectedUntil: after a refusal, no attempt before this, whatever
	// wakes the watcher (a poll, a held connection, a restart).
	rejectedUntil time.Time

	held   bool      // a connection is held open now
	heldAt time.Time // since when
	lostAt time.Time // when a held connection last ended
	// attempted: an unseal was attempted since lostAt.
	attempted bool
	// checkLoss: the next answer tells whether the last loss was a
	// restart (down or sealed seen) or not (something closed the
	// connection while the node kept running).
	checkLoss bool
	lossShort bool // the connection lost was held less than MinHold
	// shortLosses counts consecutive losses that were not restarts and came
	// before MinHold; at fallbackAfter the node falls back to ModePoll.
	shortLosses int
	fallback    bool
	mode        string

	polls             prometheus.Counter
	reachable, sealed prometheus.Gauge
}

// fallbackAfter is how many early losses in a row, none of them a restart,
// make the watcher stop trusting the held connection.
const fallbackAfter = 3

// watch watches one node until ctx is done and unseals it whenever it is
// initialized and sealed.
func (c *Coordinator) watch(ctx context.Context, n Node) {
	w := &nodeWatch{c: c, n: n,
		polls:     c.o.Metrics.polls.WithLabelValues(n.Name),
		reachable: c.o.Metrics.reachable.WithLabelValues(n.Name),
		sealed:    c.o.Metrics.sealed.WithLabelValues(n.Name),
	}
	var events chan vaultnode.ConnEvent
	if cw, ok := n.Vault.(CloseWatcher); ok {
		w.closeWatch = true
		events = make(chan vaultnode.ConnEvent)
		go cw.WatchClose(ctx, events)
	}
	timer := time.NewTimer(0) // the first poll at once
	defer timer.Stop()
	for {
		var wait time.Duration
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			seen := time.Now()
			st, err := n.Vault.SealStatus(ctx)
			if ctx.Err() != nil {
				return
			}
			w.polls.Inc()
			wait = w.handle(ctx, st, err, seen)
		case ev := <-events:
			c.o.Logger.Debug("held connection", "node", n.Name, "held", ev.Held, "held_for", ev.HeldFor)
			if !ev.Held {
				w.lost(ev.HeldFor)
				wait = 0 // poll now, on a fresh connection
				break
			}
			w.held, w.heldAt = true, time.Now()
			if !w.lostAt.IsZero() && !w.attempted {
				// Held again after a loss, and nothing tried since:
				// the status read on the new connection is the
				// freshest there is (a restarted node is noticed
				// here first), and it is the new process's.
				wait = w.handle(ctx, ev.Status, nil, w.heldAt)
				break
			}
			// Otherwise poll now rather than trust a status an unseal
			// attempt since may have overtaken.
			wait = 0
		}
		timer.Reset(wait)
	}
}

// lost notes the end of the held connection.
func (w *nodeWatch) lost(heldFor time.Duration) {
	w.held, w.lostAt, w.attempted = false, time.Now(), false
	w.checkLoss, w.lossShort = true, heldFor < w.c.o.MinHold
	w.c.o.Metrics.losses.WithLabelValues(w.n.Name).Inc()
	w.setMode(ModeFast)
}

// handle acts on one seal-status answer (or error) seen at seen, and
// returns how long to wait before the next poll.
func (w *nodeWatch) handle(ctx context.Context, st vaultnode.Status, err error, seen time.Time) time.Duration {
	c, n := w.c, w.n
	if err != nil {
		return w.failed(err)
	}
	w.backoff = 0
	if w.wasDown {
		c.o.Logger.Info("vault node is back", "node", n.Name, "sealed", st.Sealed)
		w.wasDown = false
	}
	c.setState(n.Name, func(s *NodeState) { s.Status, s.Reachable, s.LastError = st, true, "" })
	w.reachable.Set(1)
	w.sealed.Set(b2f(st.Sealed))
	switch {
	case !st.Initialized:
		if !w.wasUninit {
			c.o.Logger.Error("vault node is not initialized; keyshare never initializes by itself: run 'unsealer init'", "node", n.Name)
			c.o.Notifier.Notify(Event{Kind: EventNotInitialized, Node: n.Name, Detail: "run 'unsealer init'"})
			w.wasUninit = true
		}
		return w.idleWait()
	case st.Sealed:
		return w.onSealed(ctx, st, seen)
	}
	w.wasUninit = false
	w.wasSealed = false
	if w.checkLoss {
		// The held connection ended, yet the node kept running unsealed:
		// something in between closed it.
		w.checkLoss = false
		if w.lossShort {
			w.shortLosses++
		} else {
			w.shortLosses = 0
		}
		if w.shortLosses >= fallbackAfter && !w.fallback {
			w.fallback = true
			c.o.Logger.Warn("the held connection to the vault node does not last (a proxy closing idle connections?); polling instead",
				"node", n.Name, "every", c.o.PollInterval, "held_less_than", c.o.MinHold)
		}
	}
	return w.idleWait()
}

// failed handles a seal-status error: an unreachable node is polled fast,
// anything else backs off.
func (w *nodeWatch) failed(err error) time.Duration {
	c, n := w.c, w.n
	c.setState(n.Name, func(s *NodeState) { s.Reachable, s.LastError = false, err.Error() })
	if !vaultnode.IsUnreachable(err) {
		w.backoff = min(max(2*w.backoff, c.o.PollInterval), c.o.MaxBackoff)
		c.o.Logger.Warn("seal-status failed; backing off", "node", n.Name, "err", err, "retry_in", w.backoff)
		w.setMode(ModePoll)
		return w.backoff
	}
	if !w.wasDown {
		c.o.Logger.Warn("vault node unreachable; polling fast until it is back", "node", n.Name, "every", c.o.DownInterval)
		w.wasDown = true
	}
	w.checkLoss = false // a restart, not a closing proxy
	w.reachable.Set(0)
	w.backoff = 0
	w.setMode(ModeFast)
	return c.o.DownInterval
}

// onSealed starts an unseal of a sealed node, unless a refused attempt's
// back-off runs, and returns the pause before the next poll.
func (w *nodeWatch) onSealed(ctx context.Context, st vaultnode.Status, seen time.Time) time.Duration {
	c, n := w.c, w.n
	w.wasUninit = false
	w.checkLoss = false // a restart (or a seal), not a closing proxy
	w.setMode(ModeFast)
	if !w.wasSealed {
		c.o.Logger.Info("vault node is sealed; unsealing", "node", n.Name, "progress", st.Progress, "threshold", st.T)
		c.o.Notifier.Notify(Event{Kind: EventSealed, Node: n.Name})
		w.wasSealed = true
	}
	if d := time.Until(w.rejectedUntil); d > 0 {
		return d
	}
	w.attempted = true
	switch c.unseal(ctx, n, st, seen) {
	case outcomeUnsealed:
		w.wasSealed = false
		w.rejected = 0
		return w.idleWait()
	case outcomeRejected:
		wait := min(rejectedBackoff<<w.rejected, maxRejectedBackoff)
		w.rejected = min(w.rejected+1, 8)
		w.rejectedUntil = time.Now().Add(wait)
		return wait
	case outcomeRetry:
		return c.o.RetryAfter
	default: // outcomeWait, outcomeCannot
		return min(c.o.PollInterval, c.o.RetryAfter*2)
	}
}

// idleWait is the pause before the next poll of a node that answered and
// needs nothing, and sets the mode it implies.
func (w *nodeWatch) idleWait() time.Duration {
	o := &w.c.o
	if w.fallback && w.held && time.Since(w.heldAt) >= o.MinHold {
		w.fallback, w.shortLosses = false, 0
		o.Logger.Info("the held connection to the vault node lasts again; polling only as a safety net",
			"node", w.n.Name, "every", o.SafetyNetInterval)
	}
	switch {
	case !w.closeWatch:
		w.setMode(ModePoll)
		return jitter(o.PollInterval)
	case w.held && !w.fallback:
		w.setMode(ModeHeld)
		return inSlot(jitter(o.SafetyNetInterval))
	case !w.held && !w.fallback && time.Since(w.lostAt) < o.SettleAfterLoss:
		// The connection ended and is not held again yet: until it is, a
		// further restart would go unseen, so poll fast a little while.
		w.setMode(ModeFast)
		return o.DownInterval
	default:
		w.setMode(ModePoll)
		return jitter(o.PollInterval)
	}
}

// setMode records the node's watch mode in its state and metrics.
func (w *nodeWatch) setMode(m string) {
	if m == w.mode {
		return
	}
	w.mode = m
	for _, x := range Modes {
		w.c.o.Metrics.mode.WithLabelValues(w.n.Name, x).Set(b2f(x == m))
	}
	w.c.setState(w.n.Name, func(s *NodeState) { s.Mode = m })
}

func (c *Coordinator) setState(node string, f func(*NodeState)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.state[node])
}

// State returns a copy of what the coordinator knows of each node.
func (c *Coordinator) State() map[string]NodeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]NodeState, len(c.state))
	for k, v := range c.state {
		cp := *v
		cp.foreignSeen = nil
		out[k] = cp
	}
	return out
}

// safetyNetSlot groups safety-net polls: each is moved back to the start of
// its 250 ms slot of the wall clock, so that a thousand watchers wake in a
// few dozen bursts a second rather than a hundred separate times, which
// costs the scheduler far less. The jitter still picks the slot.
const safetyNetSlot = 250 * time.Millisecond

// inSlot shortens d to end at the start of its slot.
func inSlot(d time.Duration) time.Duration {
	if d <= safetyNetSlot {
		return d
	}
	now := time.Now()
	return now.Add(d).Truncate(safetyNetSlot).Sub(now)
}

// jitter spreads d by ±20% so that several coordinators do not poll in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// UnsealOnce checks node once and, if it is initialized and sealed, runs one
// unseal attempt. It returns whether the node is unsealed afterwards and
// how long the attempt took. Operators' one-shot commands and benchmarks use
// it; `run` uses the watchers.
func (c *Coordinator) UnsealOnce(ctx context.Context, name string) (bool, time.Duration, error) {
	for _, n := range c.nodes {
		if n.Name != name {
			continue
		}
		seen := time.Now()
		st, err := n.Vault.SealStatus(ctx)
		if err != nil {
			return false, 0, err
		}
		if !st.Initialized {
			return false, 0, fmt.Errorf("vault node %s is not initialized: run 'unsealer init'", name)
		}
		if !st.Sealed {
			return true, 0, nil
		}
		if c.unseal(ctx, n, st, seen) != outcomeUnsealed {
			c.mu.Lock()
			why := c.state[name].CannotWhy
			c.mu.Unlock()
			if why == "" {
				why = "the attempt did not complete; see the log"
			}
			return false, time.Since(seen), fmt.Errorf("vault node %s: %s", name, why)
		}
		return true, time.Since(seen), nil
	}
	return false, 0, fmt.Errorf("vault node %s is not configured", name)
}
