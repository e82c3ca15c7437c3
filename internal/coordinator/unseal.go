package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
	"github.com/keyshare/keyshare/pkg/shares"
)

type outcome int

const (
	outcomeUnsealed outcome = iota
	outcomeRetry            // something changed under us; try again soon
	outcomeWait             // foreign progress is younger than the stale bound
	outcomeCannot           // too few verified shares: nothing was submitted
	outcomeRejected         // Vault refused a full threshold of verified shares
)

// rejectedBackoff is the first pause after Vault refused a full threshold of
// verified shares: the holders' generation does not open this Vault (an
// unfinished rekey, a restored backup). It doubles up to maxRejectedBackoff,
// so a persistent mismatch costs Vault one wasted attempt per 10 minutes at
// most, not one per poll.
const (
	rejectedBackoff    = 10 * time.Second
	maxRejectedBackoff = 10 * time.Minute
)

// unseal runs one attempt on a node that reported st at time seen.
func (c *Coordinator) unseal(ctx context.Context, n Node, st vaultnode.Status, seen time.Time) outcome {
	if st.Progress > 0 && !c.ours(n.Name, st.Nonce) {
		first := c.foreignSince(n.Name, st.Nonce, seen)
		if age := time.Since(first); age < c.o.StaleProgressAfter {
			c.o.Logger.Info("someone else's unseal is in progress; leaving it alone", "node", n.Name,
				"progress", st.Progress, "threshold", st.T, "age", age.Round(time.Millisecond), "reset_after", c.o.StaleProgressAfter)
			return outcomeWait
		}
		if _, err := n.Vault.ResetUnseal(ctx); err != nil {
			c.o.Logger.Warn("failed to reset stale unseal progress", "node", n.Name, "err", err)
			return outcomeRetry
		}
		c.o.Metrics.resets.WithLabelValues(n.Name).Inc()
		c.o.Logger.Warn("reset stale unseal progress left by someone else", "node", n.Name, "progress", st.Progress,
			"age", time.Since(first).Round(time.Millisecond))
	}

	set, err := c.collect(ctx, n.Name, unseal.Current, false)
	if err != nil {
		why := fmt.Sprintf("cannot unseal: %d of %d shares reachable (%v)", set.Reachable, max(set.Manifest.Threshold, st.T), err)
		c.setState(n.Name, func(s *NodeState) { s.CannotWhy = why })
		c.o.Metrics.attempts.WithLabelValues(n.Name, "cannot").Inc()
		c.o.Logger.Error("cannot unseal: nothing submitted", "node", n.Name, "shares_reachable", set.Reachable,
			"threshold", max(set.Manifest.Threshold, st.T), "holders_answered", set.Answered, "err", err)
		c.o.Notifier.Notify(Event{Kind: EventCannotUnseal, Node: n.Name, Detail: why})
		return outcomeCannot
	}
	out, rerr := c.attempt(ctx, n, st, seen, set)
	if out != outcomeRejected {
		return out
	}
	// Vault refused a full threshold of verified shares of the committed
	// generation. If the holders hold another one (a rekey killed between
	// Vault's verify and the holders' commit leaves the new one staged; a
	// commit of a generation Vault never took leaves the old one kept),
	// that one is tried: one more attempt at most (fallback.go).
	if alt, ok := c.fallback(ctx, n, st, seen, set.Manifest.Generation); ok {
		return alt
	}
	why := fmt.Sprintf("vault refused a full threshold of verified shares of generation %d, and the holders hold no other generation it takes: the holders' generation does not open this Vault (an unfinished rekey? run 'unsealer rekey --status', then 'unsealer rekey --recover')",
		set.Manifest.Generation)
	c.o.Logger.Error("unseal rejected", "node", n.Name, "generation", set.Manifest.Generation, "err", rerr)
	c.setState(n.Name, func(s *NodeState) { s.CannotWhy = why })
	c.o.Notifier.Notify(Event{Kind: EventCannotUnseal, Node: n.Name, Detail: why})
	return outcomeRejected
}

// collect runs the pipeline for w's generation on node n: every holder is
// asked in parallel, each call within HolderTimeout on its own, and it
// stops at a threshold of verified shares unless every is set.
func (c *Coordinator) collect(ctx context.Context, node string, w unseal.Which, every bool) (*unseal.Result, error) {
	set, err := unseal.Collect(ctx, c.holders.Refs(), c.holders.Total(), node, unseal.Options{
		Timeout: c.o.HolderTimeout, Which: w, Every: every, Logger: c.o.Logger,
		BadShare: func(id string) { c.o.Metrics.badShares.WithLabelValues(id).Inc() },
	})
	if w == unseal.Current {
		// Holders that answered with the committed generation before the
		// collection ended.
		c.o.Metrics.holdersAlive.Set(float64(set.Answered))
	}
	c.o.Metrics.sharesReachable.Set(float64(set.Reachable))
	if set.Manifest.Threshold > 0 {
		c.o.Metrics.threshold.Set(float64(set.Manifest.Threshold))
	}
	return set, err
}

// attempt submits a threshold of the collected verified shares to n and
// reports the outcome. On outcomeRejected it returns Vault's error, and the
// caller decides what to tell.
func (c *Coordinator) attempt(ctx context.Context, n Node, st vaultnode.Status, seen time.Time, set *unseal.Result) (outcome, error) {
	defer set.Zero()
	if st.T != 0 && st.T != set.Manifest.Threshold {
		c.o.Logger.Error("vault's threshold differs from the holders' manifest; not submitting", "node", n.Name,
			"vault_threshold", st.T, "manifest_threshold", set.Manifest.Threshold, "generation", set.Manifest.Generation, "which", set.Which.String())
		c.setState(n.Name, func(s *NodeState) { s.CannotWhy = "vault threshold differs from the manifest" })
		return outcomeCannot, nil
	}

	final, err := unseal.Submit(ctx, n.Vault, set.Threshold(), func(st vaultnode.Status) {
		c.o.Metrics.submitted.WithLabelValues(n.Name).Inc()
		if st.Sealed {
			// An attempt holding one of our verified shares is ours to
			// finish, even if another coordinator started it.
			c.setState(n.Name, func(ns *NodeState) { ns.ourNonce = st.Nonce })
		}
	})
	switch {
	case errors.Is(err, unseal.ErrNonceChanged):
		c.o.Logger.Warn("unseal progress changed under us; starting over", "node", n.Name)
		c.o.Metrics.attempts.WithLabelValues(n.Name, "retry").Inc()
		return outcomeRetry, nil
	case errors.Is(err, unseal.ErrRejected) || (err == nil && final.Sealed):
		c.o.Metrics.attempts.WithLabelValues(n.Name, "rejected").Inc()
		if err == nil {
			err = errors.New("vault still sealed after a full threshold")
		}
		return outcomeRejected, err
	case err != nil:
		c.o.Logger.Error("unseal attempt failed", "node", n.Name, "err", err)
		c.o.Metrics.attempts.WithLabelValues(n.Name, "error").Inc()
		return outcomeRetry, nil
	}
	took := time.Since(seen)
	c.o.Metrics.attempts.WithLabelValues(n.Name, "unsealed").Inc()
	c.o.Metrics.duration.Observe(took.Seconds())
	c.o.Metrics.sealed.WithLabelValues(n.Name).Set(0)
	c.setState(n.Name, func(s *NodeState) {
		s.Status, s.LastUnseal, s.CannotWhy, s.ourNonce = final, took, "", ""
		s.Unseals++
		clear(s.foreignSeen)
	})
	c.o.Logger.Info("unsealed", "node", n.Name, "generation", set.Manifest.Generation, "which", set.Which.String(),
		"indices", indices(set.Threshold()), "took", took.Round(time.Millisecond).String())
	c.o.Notifier.Notify(Event{Kind: EventUnsealed, Node: n.Name, Detail: took.Round(time.Millisecond).String()})
	return outcomeUnsealed, nil
}

func (c *Coordinator) ours(node, nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nonce != "" && c.state[node].ourNonce == nonce
}

// foreignSince records when a foreign nonce was first seen.
func (c *Coordinator) foreignSince(node, nonce string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[node]
	if t, ok := s.foreignSeen[nonce]; ok {
		return t
	}
	s.foreignSeen[nonce] = now
	return now
}

func indices(ss []shares.Share) shares.Indices {
	out := make(shares.Indices, len(ss))
	for i, s := range ss {
		out[i] = s.Index
	}
	return out
}
