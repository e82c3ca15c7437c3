package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// The staged-generation fallback: the coordinator's half of "keep N until
// N+1 has unsealed" (the holder's half is pkg/shares.Store.Prove and
// internal/holder/proof.go).
//
// Holders keep more than one generation while a rekey is unsettled: the
// staged N+1 between Vault's verify and their commit, or the previous N
// after a commit, until N+1 has unsealed a node. When Vault refuses a full
// threshold of verified shares of the committed generation, the
// coordinator tries the other generation a majority of holders hold: the
// staged one if there is one, else the previous one. That is one more
// attempt at most, and Vault reset its progress after the refusal, so
// nothing is mixed. For that attempt every holder that holds the other
// generation is asked, and the coordinator waits for them all (within the
// holder timeout), so that each holder's last release before the unseal is
// the generation that unseals, and its proof is right. If it unseals, the
// coordinator settles:
//
//	staged worked     commit it on every holder (each one allows it: it saw
//	                  the node unsealed after releasing it, or the rekey it
//	                  was staged under has ended); where a holder refuses or
//	                  is down, log the command that finishes it
//	previous worked   nothing to commit: the holders' committed generation
//	                  is one Vault never took; log what the operator must do
//
// If the other generation is refused too, the node waits, as before, with
// the doubling back-off of a refused attempt.

// fallback tries once, on node n that refused generation rejected, another
// generation the holders hold. ok is false when there is none to try.
func (c *Coordinator) fallback(ctx context.Context, n Node, st vaultnode.Status, seen time.Time, rejected uint64) (outcome, bool) {
	for _, w := range []unseal.Which{unseal.Staged, unseal.Previous} {
		set, err := c.collect(ctx, n.Name, w, true)
		if err != nil {
			set.Zero()
			continue
		}
		gen := set.Manifest.Generation
		if gen == rejected {
			set.Zero()
			continue
		}
		c.o.Logger.Warn("vault refused the committed generation; trying the other generation the holders hold",
			"node", n.Name, "refused", rejected, "trying", gen, "which", w.String())
		out, err := c.attempt(ctx, n, st, seen, set)
		switch out {
		case outcomeUnsealed:
			c.settle(ctx, n.Name, w, gen, rejected)
		case outcomeRejected:
			why := fmt.Sprintf("vault refused a full threshold of verified shares of both generation %d (committed) and %d (%s): the holders hold no generation that opens this Vault; run 'unsealer rekey --status'",
				rejected, gen, w)
			c.o.Logger.Error("unseal rejected", "node", n.Name, "generations", []uint64{rejected, gen}, "err", err)
			c.setState(n.Name, func(s *NodeState) { s.CannotWhy = why })
			c.o.Notifier.Notify(Event{Kind: EventCannotUnseal, Node: n.Name, Detail: why})
		}
		return out, true
	}
	return 0, false
}

// settle makes the holders agree with what Vault took, where the
// coordinator may, and says what the operator must run where it may not.
func (c *Coordinator) settle(ctx context.Context, node string, w unseal.Which, worked, refused uint64) {
	if w != unseal.Staged {
		c.o.Logger.Error("the holders' committed generation does not open vault; their previous one does",
			"node", node, "committed", refused, "previous", worked,
			"todo", fmt.Sprintf("generation %d was committed but vault never took it (a rekey cancelled after staging, or a forged commit); "+
				"the holders keep generation %d, and every unseal costs one refused attempt until it is settled: deal a fresh generation with 'unsealer rekey' from the shares of generation %d ('unsealer rekey --status' shows the holders)", refused, worked, worked))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.HolderTimeout)
	defer cancel()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, ref := range c.holders.Refs() {
		if seen[ref.ID] {
			continue // another address of a holder already asked
		}
		seen[ref.ID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.holders.Commit(ctx, ref.ID, worked); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", ref.ID, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		c.o.Logger.Info("staged generation unsealed vault: committed it on the holders", "node", node, "generation", worked, "replaced", refused)
		return
	}
	c.o.Logger.Error("staged generation unsealed vault, but not every holder committed it", "node", node, "generation", worked,
		"failed", strings.Join(failed, "; "),
		"todo", fmt.Sprintf("run 'unsealer init --commit %d' when those holders are up (they keep generation %d staged, and release it, until then)", worked, worked))
}
