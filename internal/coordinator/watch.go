package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/keyshare/keyshare/internal/vaultnode"
)

// watch polls one node until ctx is done and unseals it whenever it is
// initialized and sealed.
func (c *Coordinator) watch(ctx context.Context, n Node) {
	wake := make(chan struct{}, 1)
	if cw, ok := n.Vault.(CloseWatcher); ok {
		go cw.WatchClose(ctx, wake)
	}
	backoff := time.Duration(0)
	wasSealed, wasUninit, wasDown := false, false, false
	rejected := 0 // consecutive refusals of a full verified threshold
	for ctx.Err() == nil {
		seen := time.Now()
		st, err := n.Vault.SealStatus(ctx)
		c.o.Metrics.polls.WithLabelValues(n.Name).Inc()
		wait := jitter(c.o.PollInterval)
		switch {
		case err != nil && vaultnode.IsUnreachable(err):
			if !wasDown {
				c.o.Logger.Warn("vault node unreachable; polling fast until it is back", "node", n.Name, "every", c.o.DownInterval)
				wasDown = true
			}
			c.setState(n.Name, func(s *NodeState) { s.Reachable, s.LastError = false, err.Error() })
			c.o.Metrics.reachable.WithLabelValues(n.Name).Set(0)
			wait = c.o.DownInterval
			backoff = 0
		case err != nil:
			backoff = min(max(2*backoff, c.o.PollInterval), c.o.MaxBackoff)
			c.o.Logger.Warn("seal-status failed; backing off", "node", n.Name, "err", err, "retry_in", backoff)
			c.setState(n.Name, func(s *NodeState) { s.Reachable, s.LastError = false, err.Error() })
			wait = backoff
		default:
			backoff = 0
			if wasDown {
				c.o.Logger.Info("vault node is back", "node", n.Name, "sealed", st.Sealed)
				wasDown = false
			}
			c.setState(n.Name, func(s *NodeState) { s.Status, s.Reachable, s.LastError = st, true, "" })
			c.o.Metrics.reachable.WithLabelValues(n.Name).Set(1)
			c.o.Metrics.sealed.WithLabelValues(n.Name).Set(b2f(st.Sealed))
			switch {
			case !st.Initialized:
				if !wasUninit {
					c.o.Logger.Error("vault node is not initialized; keyshare never initializes by itself: run 'unsealer init'", "node", n.Name)
					c.o.Notifier.Notify(Event{Kind: EventNotInitialized, Node: n.Name, Detail: "run 'unsealer init'"})
					wasUninit = true
				}
			case st.Sealed:
				wasUninit = false
				if !wasSealed {
					c.o.Logger.Info("vault node is sealed; unsealing", "node", n.Name, "progress", st.Progress, "threshold", st.T)
					c.o.Notifier.Notify(Event{Kind: EventSealed, Node: n.Name})
					wasSealed = true
				}
				switch c.unseal(ctx, n, st, seen) {
				case outcomeUnsealed:
					wasSealed = false
					rejected = 0
				case outcomeRejected:
					wait = min(rejectedBackoff<<rejected, maxRejectedBackoff)
					rejected = min(rejected+1, 8)
				case outcomeRetry:
					wait = c.o.RetryAfter
				case outcomeWait, outcomeCannot:
					wait = min(c.o.PollInterval, c.o.RetryAfter*2)
				}
			default:
				wasUninit = false
				wasSealed = false
			}
		}
		sleepOrWake(ctx, wait, wake)
	}
}

// CloseWatcher is an optional ability of a VaultNode: it signals when its
// connection to the node ends (a stop or restart), so that the watcher
// polls at once instead of at its next tick.
type CloseWatcher interface {
	WatchClose(ctx context.Context, wake chan<- struct{})
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

// jitter spreads d by ±20% so that several coordinators do not poll in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
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
