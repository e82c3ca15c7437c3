package lifecycle_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// approvals models the holders' two-operator rule (pkg/policy
// rekeyapproval.go) for in-memory holders: a rekey release is denied
// "approval pending" until two distinct operators asked for its nonce.
type approvals struct {
	mu    sync.Mutex
	asked map[string]map[string]bool // holder -> nonce+operator
}

// asOperator is one operator's view of a memHolder under the rule.
type asOperator struct {
	*memHolder
	op string
	a  *approvals
}

func (h asOperator) ReleaseForRekey(ctx context.Context, node string, gen uint64, nonce string) ([]sharerpc.Share, error) {
	h.a.mu.Lock()
	key := h.id + " " + nonce
	if h.a.asked[key] == nil {
		h.a.asked[key] = map[string]bool{}
	}
	h.a.asked[key][h.op] = true
	n := len(h.a.asked[key])
	h.a.mu.Unlock()
	if n < 2 {
		return nil, policy.Deny(policy.ReasonApprovalPending, "rekey %s needs 2 distinct operator identities, has %d", nonce, n)
	}
	return h.memHolder.ReleaseForRekey(ctx, node, gen, nonce)
}

func newApprovals() *approvals { return &approvals{asked: map[string]map[string]bool{}} }

// rekeyAs rekeys from the holders as operator op under the two-operator
// rule a, waiting up to wait for a second operator to approve.
func (w *world) rekeyAs(ctx context.Context, op string, a *approvals, wait time.Duration, opts lifecycle.Options) error {
	_, err := lifecycle.Rekey(ctx, lifecycle.RekeyConfig{Node: w.rnode, Holders: w.holdersAs(op, a), Plan: w.plan,
		Old: lifecycle.FromHoldersApproved(w.holdersAs(op, a), wait, opts), Options: opts})
	return err
}

func (w *world) holdersAs(op string, a *approvals) []lifecycle.HolderRef {
	out := make([]lifecycle.HolderRef, len(w.mem))
	for i, h := range w.mem {
		out[i] = lifecycle.HolderRef{ID: h.id, Holder: asOperator{memHolder: h, op: op, a: a}}
	}
	return out
}

// TestRekeyWaitsForSecondOperator: with the holders' two-operator rule, a
// rekey from the holders tells its operator the exact command for the
// second one and waits; `unsealer rekey --approve NONCE` by a second
// operator lets it finish. Before the approval flow, the rekey failed at
// once with the holders' denial and no way for a second operator to join.
func TestRekeyWaitsForSecondOperator(t *testing.T) {
	w, ctx := unsealedWorld(t)
	a := newApprovals()
	var out proctest.Buffer
	opts := lifecycle.Options{Out: &out}
	done := make(chan error, 1)
	go func() {
		done <- w.rekeyAs(ctx, "alice", a, time.Minute, opts)
	}()
	cmd := regexp.MustCompile(`unsealer rekey --approve (\S+)`)
	var nonce string
	proctest.WaitFor(t, 20*time.Second, "the rekey to name the approval command", func() bool {
		m := cmd.FindStringSubmatch(out.String())
		if m != nil {
			nonce = m[1]
		}
		return m != nil
	})
	if nonce != w.fake.RekeyNonce() {
		t.Fatalf("the approval command names nonce %q; vault's rekey is %q", nonce, w.fake.RekeyNonce())
	}
	msg, err := lifecycle.ApproveRekey(ctx, w.holdersAs("bob", a), "vault-1", nonce)
	if err != nil || strings.Count(msg, "approval recorded") != 3 {
		t.Fatalf("approve: %v\n%s", err, msg)
	}
	if err := <-done; err != nil {
		t.Fatalf("rekey after the approval: %v\n%s", err, out.String())
	}
	w.settled(t, 2)
}

// TestRekeyApprovalTimesOut: with no second operator, the rekey gives up
// after the wait, names the nonce, and cancels Vault's rekey: nothing was
// staged and generation 1 stays in force.
func TestRekeyApprovalTimesOut(t *testing.T) {
	w, ctx := unsealedWorld(t)
	a := newApprovals()
	err := w.rekeyAs(ctx, "alice", a, 3*time.Second, lifecycle.Options{})
	if err == nil || !strings.Contains(err.Error(), "no second operator approved") {
		t.Fatalf("rekey with one operator: %v; want the approval timeout", err)
	}
	if w.fake.RekeyNonce() != "" {
		t.Fatalf("vault's rekey %q still in progress after the timeout; want it cancelled", w.fake.RekeyNonce())
	}
	w.settled(t, 1)
}

// TestApproveNeedsMajority: an approval no holder could record is an
// error that says so per holder.
func TestApproveNeedsMajority(t *testing.T) {
	w, ctx := unsealedWorld(t)
	_, err := lifecycle.ApproveRekey(ctx, w.holdersAs("bob", newApprovals()), "vault-1", "")
	if err == nil || !strings.Contains(err.Error(), "needs the rekey's nonce") {
		t.Fatalf("approve without a nonce: %v", err)
	}
	// A nonce Vault does not run: even with two operators asking, every
	// holder refuses (target not rekeying), and the approval says so.
	a := newApprovals()
	for _, h := range w.holdersAs("alice", a) {
		_, _ = h.Holder.ReleaseForRekey(ctx, "vault-1", 1, "n-unknown")
	}
	msg, err := lifecycle.ApproveRekey(ctx, w.holdersAs("bob", a), "vault-1", "n-unknown")
	if err == nil || !strings.Contains(err.Error(), "only 0 of 3 holders recorded") {
		t.Fatalf("approve of a rekey vault does not run: %v\n%s", err, msg)
	}
}
