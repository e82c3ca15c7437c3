package policy

import (
	"net/netip"
	"testing"
	"time"
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
		g, err := newEngine(t).Decide(req)
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
