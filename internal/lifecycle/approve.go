package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyshare/keyshare/internal/unseal"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/shares"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// DefaultApprovalWait is how long a rekey waits for a second operator to
// approve it (`unsealer rekey --approve NONCE`) before it cancels. It is
// shorter than the holders' default approval window (15 minutes), so an
// approval given while the rekey waits still counts.
const DefaultApprovalWait = 10 * time.Minute

// approvalPoll is how often a waiting rekey asks the holders again.
const approvalPoll = 2 * time.Second

// isApprovalPending reports whether a holder refused a rekey release only
// because not enough distinct operators have asked for its nonce yet.
func isApprovalPending(err error) bool {
	d, ok := sharerpc.DenialFromError(err)
	return ok && d.Reason == policy.ReasonApprovalPending
}

// FromHoldersApproved is FromHolders for holders that need more than one
// operator identity to ask for a rekey's shares (policy.rekey_approvals).
// While the only refusals standing between this operator and a threshold
// are "approval pending", it tells the operator once what the second
// operator must run, and asks again every few seconds for at most wait.
func FromHoldersApproved(hs []HolderRef, wait time.Duration, o Options) OldShares {
	o.defaults()
	if wait <= 0 {
		wait = DefaultApprovalWait
	}
	return func(ctx context.Context, m shares.Manifest, node, nonce string) ([]shares.Share, error) {
		deadline := time.Now().Add(wait)
		told := false
		for {
			var mu sync.Mutex
			pending := false
			ss, err := release(ctx, hs, m, node, func(ctx context.Context, ref unseal.HolderRef, node string, gen uint64) ([]sharerpc.Share, error) {
				got, err := holderByID(hs, ref.ID).ReleaseForRekey(ctx, node, gen, nonce)
				if isApprovalPending(err) {
					mu.Lock()
					pending = true
					mu.Unlock()
				}
				return got, err
			})
			if err == nil || !pending {
				if err != nil {
					return nil, fmt.Errorf("for the rekey of %s: %w", node, err)
				}
				return ss, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("for the rekey of %s: no second operator approved nonce %s within %s (%w)", node, nonce, wait, err)
			}
			if !told {
				o.printf("the holders release rekey shares only when a second operator asks for the same rekey: have another operator run\n\n    unsealer rekey --approve %s --node %s -c <their operator config>\n\nwaiting up to %s", nonce, node, wait)
				told = true
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("for the rekey of %s: waiting for a second operator: %w", node, ctx.Err())
			case <-time.After(approvalPoll):
			}
		}
	}
}

func holderByID(hs []HolderRef, id string) Holder {
	for _, h := range hs {
		if h.ID == id {
			return h.Holder
		}
	}
	return nil
}

// ApproveRekey is `unsealer rekey --approve NONCE`: this operator asks
// every holder for its shares of the current generation for the rekey
// with nonce on node, which each holder counts as this operator's
// approval. Shares a holder sends back (when this approval completed the
// rule) are zeroed at once: the operator who started the rekey collects
// them. It returns one line per holder, and an error unless a majority of
// the holders recorded the approval.
func ApproveRekey(ctx context.Context, hs []HolderRef, node, nonce string) (string, error) {
	if nonce == "" {
		return "", errors.New("--approve needs the rekey's nonce, as the operator who started it was shown")
	}
	a := Agree(ctx, hs)
	m := a.Manifest
	if m.Generation == 0 {
		return "", fmt.Errorf("no generation is held by a majority of holders (%s): nothing to approve", a.Unreachable())
	}
	var mu sync.Mutex
	lines := make([]string, 0, len(hs))
	counted := 0
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := h.Holder.ReleaseForRekey(ctx, node, m.Generation, nonce)
			for _, s := range got {
				shares.Zero(s.Value)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil || isApprovalPending(err) {
				counted++
				lines = append(lines, h.ID+": approval recorded")
				return
			}
			lines = append(lines, fmt.Sprintf("%s: not recorded: %v", h.ID, err))
		}()
	}
	wg.Wait()
	sort.Strings(lines)
	out := strings.Join(lines, "\n")
	if counted < len(hs)/2+1 {
		return out, fmt.Errorf("only %d of %d holders recorded the approval of rekey %s on %s:\n%s", counted, len(hs), nonce, node, out)
	}
	return out + fmt.Sprintf("\nrekey %s on %s approved by this operator on %d of %d holders; the operator who started it goes on", nonce, node, counted, len(hs)), nil
}
