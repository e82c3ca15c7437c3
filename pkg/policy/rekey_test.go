package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// TestDecideRekey: shares for a rekey go only to operators, only while the
// unsealed target reports a rekey with exactly the nonce asked for.
func TestDecideRekey(t *testing.T) {
	type tc struct {
		name   string
		mod    func(*Request)
		reason Reason // "" for allowed
	}
	base := func() Request {
		r := okReq()
		r.PeerID = "spiffe://" + td + "/operator/alice"
		r.Source = netip.MustParseAddr("127.0.2.9")
		r.RekeyNonce = "nonce-1"
		r.Status = TargetStatus{CheckedAt: t0.Add(-time.Second), Initialized: true, Sealed: false, RekeyStarted: true, RekeyNonce: "nonce-1"}
		return r
	}
	run := func(t *testing.T, tc tc) {
		req := base()
		if tc.mod != nil {
			tc.mod(&req)
		}
		// One operator suffices here; TestRekeyNeedsTwoOperators tests
		// the approval rule.
		g, err := newEngine(t, RekeyApprovals(1, time.Minute)).Decide(req)
		if tc.reason == "" {
			if err != nil || !g.Operator {
				t.Fatalf("denied: %v (grant %+v)", err, g)
			}
			return
		}
		if !isReason(err, tc.reason) {
			t.Fatalf("err = %v, want %s", err, tc.reason)
		}
	}
	for _, c := range []tc{
		{name: "ok/operator-matching-nonce"},
		{name: "fail/unsealer-may-not", reason: ReasonOperatorRule, mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/unsealer/u1"
			r.Source = netip.MustParseAddr("127.0.0.40")
		}},
		{name: "fail/no-rekey-in-progress", reason: ReasonTargetNotRekeying, mod: func(r *Request) { r.Status.RekeyStarted = false }},
		{name: "fail/other-nonce", reason: ReasonTargetNotRekeying, mod: func(r *Request) { r.Status.RekeyNonce = "nonce-2" }},
		{name: "fail/sealed-target", reason: ReasonTargetNotRekeying, mod: func(r *Request) { r.Status.Sealed = true }},
		{name: "fail/stale-check", reason: ReasonTargetUnchecked, mod: func(r *Request) { r.Status.CheckedAt = t0.Add(-time.Hour) }},
		{name: "fail/operator-wrong-address", reason: ReasonOperatorRule, mod: func(r *Request) { r.Source = netip.MustParseAddr("127.0.0.40") }},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

// TestRekeyNeedsTwoOperators: by default one operator credential is not
// enough for a rekey release: a second, distinct operator identity must ask
// for the same nonce (each seeing the target rekeying with it) within the
// window. Before the rule, "fail/one-operator-alone" was allowed.
func TestRekeyNeedsTwoOperators(t *testing.T) {
	const alice, bob, carol = "spiffe://" + td + "/operator/alice", "spiffe://" + td + "/operator/bob", "spiffe://" + td + "/operator/carol"
	req := func(who string, at time.Duration, nonce string) Request {
		r := okReq()
		r.PeerID, r.Source, r.RekeyNonce, r.Now = who, netip.MustParseAddr("127.0.2.9"), nonce, t0.Add(at)
		r.Status = TargetStatus{CheckedAt: r.Now, Initialized: true, RekeyStarted: true, RekeyNonce: nonce}
		return r
	}
	type step struct {
		r  Request
		ok bool
	}
	type tc struct {
		name  string
		steps []step
	}
	run := func(t *testing.T, tc tc) {
		e := newEngine(t, AllowOperator(bob, "127.0.2.0/24"), AllowOperator(carol, "127.0.3.0/24"), OperatorRateLimit(60, 10))
		for i, s := range tc.steps {
			_, err := e.Decide(s.r)
			if (err == nil) != s.ok {
				t.Fatalf("step %d (%s, nonce %s): %v; want allowed=%v", i, s.r.PeerID, s.r.RekeyNonce, err, s.ok)
			}
			if err != nil && !s.ok && s.r.PeerID != carol && !isReason(err, ReasonApprovalPending) {
				t.Fatalf("step %d: %v; want %s", i, err, ReasonApprovalPending)
			}
		}
	}
	for _, c := range []tc{
		{name: "fail/one-operator-alone", steps: []step{{req(alice, 0, "n1"), false}}},
		{name: "fail/same-operator-twice", steps: []step{{req(alice, 0, "n1"), false}, {req(alice, time.Minute, "n1"), false}}},
		{name: "ok/second-operator-gets-shares", steps: []step{{req(alice, 0, "n1"), false}, {req(bob, time.Minute, "n1"), true}}},
		{name: "ok/first-operator-again-within-window", steps: []step{{req(alice, 0, "n1"), false}, {req(bob, time.Minute, "n1"), true}, {req(alice, 2*time.Minute, "n1"), true}}},
		{name: "fail/second-operator-after-window", steps: []step{{req(alice, 0, "n1"), false}, {req(bob, DefaultRekeyApprovalWindow+time.Second, "n1"), false}}},
		{name: "fail/other-nonce", steps: []step{{req(alice, 0, "n1"), false}, {req(bob, time.Minute, "n2"), false}}},
		{name: "fail/denied-operator-does-not-count", steps: []step{
			{req(alice, 0, "n1"), false},
			{func() Request {
				r := req(carol, time.Minute, "n1")
				r.Source = netip.MustParseAddr("127.0.2.9")
				return r
			}(), false}, // carol's wrong address
			{req(alice, 2*time.Minute, "n1"), false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
	if _, err := New(TrustDomain(td), AllowRole(identity.RoleUnsealer, "10.0.0.1"), KnownTargets("v"), RekeyApprovals(0, time.Minute)); err == nil {
		t.Fatal("RekeyApprovals(0) accepted")
	}
}
