package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

const td = "keyshare.test"

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func newEngine(t testing.TB, extra ...Option) *Engine {
	t.Helper()
	opts := append([]Option{
		TrustDomain(td),
		AllowRole(identity.RoleUnsealer, "127.0.0.0/24"),
		AllowID("spiffe://"+td+"/unsealer/pinned", "127.0.1.5"),
		AllowOperator("spiffe://"+td+"/operator/alice", "127.0.2.0/24"),
		KnownTargets("vault-1", "vault-2", "vault-3"),
		RateLimit(60, 2),
	}, extra...)
	e, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func okReq() Request {
	return Request{
		PeerID:     "spiffe://" + td + "/unsealer/u1",
		Source:     netip.MustParseAddr("127.0.0.40"),
		Target:     "vault-2",
		Generation: 3,
		Now:        t0,
		Status:     TargetStatus{CheckedAt: t0.Add(-time.Second), Initialized: true, Sealed: true},
		Held:       []uint64{3},
	}
}

func TestDecide(t *testing.T) {
	type tc struct {
		name   string
		mod    func(*Request)
		reason Reason // "" for allowed
		rule   string
	}
	run := func(t *testing.T, tc tc) {
		e := newEngine(t)
		req := okReq()
		if tc.mod != nil {
			tc.mod(&req)
		}
		g, err := e.Decide(req)
		if tc.reason == "" {
			if err != nil {
				t.Fatalf("denied: %v", err)
			}
			if g.Rule != tc.rule {
				t.Fatalf("rule = %q, want %q", g.Rule, tc.rule)
			}
			return
		}
		d, ok := AsDenial(err)
		if !ok || d.Reason != tc.reason {
			t.Fatalf("err = %v, want denial %s", err, tc.reason)
		}
		if d.Detail == "" {
			t.Fatal("denial has no detail")
		}
	}
	for _, c := range []tc{
		{name: "ok/role", rule: "role:unsealer"},
		{name: "ok/staged-generation-during-rekey", rule: "role:unsealer", mod: func(r *Request) { r.Held = []uint64{3, 4}; r.Generation = 4 }},
		{name: "ok/exact-id-bound-address", rule: "id:spiffe://keyshare.test/unsealer/pinned", mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/unsealer/pinned"
			r.Source = netip.MustParseAddr("127.0.1.5")
		}},
		{name: "ok/operator-from-workstation", rule: "operator:spiffe://keyshare.test/operator/alice", mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/operator/alice"
			r.Source = netip.MustParseAddr("127.0.2.9")
		}},
		{name: "ok/ipv4-mapped-source", rule: "role:unsealer", mod: func(r *Request) { r.Source = netip.MustParseAddr("::ffff:127.0.0.40") }},
		{name: "fail/no-identity", reason: ReasonUnauthenticated, mod: func(r *Request) { r.PeerID = "" }},
		{name: "fail/wrong-role-holder", reason: ReasonPeerNotAllowed, mod: func(r *Request) { r.PeerID = "spiffe://" + td + "/holder/b" }},
		{name: "fail/unknown-role", reason: ReasonPeerNotAllowed, mod: func(r *Request) { r.PeerID = "spiffe://" + td + "/admin/x" }},
		{name: "fail/other-trust-domain", reason: ReasonPeerNotAllowed, mod: func(r *Request) { r.PeerID = "spiffe://evil.test/unsealer/u1" }},
		{name: "fail/not-spiffe", reason: ReasonPeerNotAllowed, mod: func(r *Request) { r.PeerID = "https://keyshare.test/unsealer/u1" }},
		{name: "fail/extra-path", reason: ReasonPeerNotAllowed, mod: func(r *Request) { r.PeerID = "spiffe://" + td + "/unsealer/u1/x" }},
		{name: "fail/source-outside-role-cidr", reason: ReasonSourceNotAllowed, mod: func(r *Request) { r.Source = netip.MustParseAddr("127.0.9.1") }},
		{name: "fail/pinned-id-wrong-address", reason: ReasonSourceNotAllowed, mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/unsealer/pinned"
			r.Source = netip.MustParseAddr("127.0.1.6")
		}},
		{name: "fail/operator-wrong-address", reason: ReasonOperatorRule, mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/operator/alice"
		}},
		{name: "fail/operator-not-listed", reason: ReasonPeerNotAllowed, mod: func(r *Request) {
			r.PeerID = "spiffe://" + td + "/operator/mallory"
			r.Source = netip.MustParseAddr("127.0.2.9")
		}},
		{name: "fail/unknown-target", reason: ReasonUnknownTarget, mod: func(r *Request) { r.Target = "vault-9" }},
		{name: "fail/generation", reason: ReasonGenerationMismatch, mod: func(r *Request) { r.Generation = 2 }},
		{name: "fail/generation-zero", reason: ReasonGenerationMismatch, mod: func(r *Request) { r.Generation = 0; r.Held = []uint64{0} }},
		{name: "fail/unsealed", reason: ReasonTargetNotSealed, mod: func(r *Request) { r.Status.Sealed = false }},
		{name: "fail/uninitialized", reason: ReasonTargetNotSealed, mod: func(r *Request) { r.Status.Initialized = false }},
		{name: "fail/unchecked", reason: ReasonTargetUnchecked, mod: func(r *Request) { r.Status = TargetStatus{} }},
		{name: "fail/check-error", reason: ReasonTargetUnchecked, mod: func(r *Request) { r.Status.Err = errors.New("connection refused") }},
		{name: "fail/stale-check", reason: ReasonTargetUnchecked, mod: func(r *Request) { r.Status.CheckedAt = t0.Add(-time.Minute) }},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

func TestHoldAndRate(t *testing.T) {
	e := newEngine(t)
	req := okReq()
	e.SetHold("disk replacement")
	if _, err := e.Decide(req); !isReason(err, ReasonMaintenanceHold) || !strings.Contains(err.Error(), "disk replacement") {
		t.Fatalf("on hold: err = %v", err)
	}
	e.ClearHold()
	// Burst 2, then limited; a denied request of another kind spends nothing.
	for i := range 2 {
		if _, err := e.Decide(req); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
	}
	if _, err := e.Decide(req); !isReason(err, ReasonRateLimited) {
		t.Fatalf("third release: err = %v, want rate_limited", err)
	}
	other := req
	other.PeerID = "spiffe://" + td + "/unsealer/u2"
	if _, err := e.Decide(other); err != nil {
		t.Fatalf("another peer is limited too: %v", err)
	}
	// 60/min refills one token per second.
	req.Now = req.Now.Add(time.Second)
	req.Status.CheckedAt = req.Now
	if _, err := e.Decide(req); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	// Operators have their own, stricter budget.
	op := okReq()
	op.PeerID = "spiffe://" + td + "/operator/alice"
	op.Source = netip.MustParseAddr("127.0.2.1")
	for i := range DefaultOperatorBurst {
		if _, err := e.Decide(op); err != nil {
			t.Fatalf("operator release %d: %v", i, err)
		}
	}
	op.Now = op.Now.Add(time.Minute)
	op.Status.CheckedAt = op.Now
	if _, err := e.Decide(op); !isReason(err, ReasonRateLimited) {
		t.Fatalf("operator after a minute: err = %v, want rate_limited", err)
	}
}

func TestNewValidation(t *testing.T) {
	type tc struct {
		name string
		opts []Option
		want string
	}
	base := []Option{TrustDomain(td), KnownTargets("vault-1")}
	run := func(t *testing.T, tc tc) {
		_, err := New(append(append([]Option{}, base...), tc.opts...)...)
		if tc.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("err = %v, want it to mention %q", err, tc.want)
		}
	}
	for _, c := range []tc{
		{name: "ok/role", opts: []Option{AllowRole(identity.RoleUnsealer, "10.0.0.20/32")}},
		{name: "ok/any-source-on-purpose", opts: []Option{AllowRole(identity.RoleUnsealer, "0.0.0.0/0", "::/0")}},
		{name: "fail/role-without-cidrs", opts: []Option{AllowRole(identity.RoleUnsealer)}, want: "no source CIDRs"},
		{name: "fail/id-without-cidrs", opts: []Option{AllowID("spiffe://" + td + "/unsealer/u")}, want: "no source CIDRs"},
		{name: "fail/holder-role-grant", opts: []Option{AllowRole(identity.RoleHolder, "10.0.0.0/24")}, want: "holders are never allowed"},
		{name: "fail/holder-id-grant", opts: []Option{AllowID("spiffe://"+td+"/holder/b", "10.0.0.0/24")}, want: "holders are never allowed"},
		{name: "fail/no-grants", want: "no identity is allowed"},
		{name: "fail/bad-cidr", opts: []Option{AllowRole(identity.RoleUnsealer, "10.0.0.0/33")}, want: `source "10.0.0.0/33"`},
		{name: "fail/operator-role-grant", opts: []Option{AllowRole(identity.RoleOperator)}, want: "operators are listed one by one"},
		{name: "fail/operator-without-cidr", opts: []Option{AllowOperator("spiffe://" + td + "/operator/a")}, want: "source CIDRs are required"},
		{name: "fail/operator-in-ids", opts: []Option{AllowID("spiffe://" + td + "/operator/a")}, want: "operators list"},
		{name: "fail/bad-id", opts: []Option{AllowID("unsealer-1")}, want: `allowed ID "unsealer-1"`},
		{name: "fail/rate", opts: []Option{AllowRole(identity.RoleUnsealer, "10.0.0.20"), RateLimit(0, 1)}, want: "rate limit"},
		{name: "fail/operator-rate-burst", opts: []Option{AllowRole(identity.RoleUnsealer, "10.0.0.20"), OperatorRateLimit(60, 0)}, want: "operator rate limit 60/min burst 0"},
		{name: "fail/status-age", opts: []Option{AllowRole(identity.RoleUnsealer, "10.0.0.20"), MaxStatusAge(time.Hour)}, want: "max status age"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
	if _, err := New(AllowRole(identity.RoleUnsealer, "10.0.0.20"), KnownTargets("v")); err == nil {
		t.Fatal("engine without a trust domain accepted")
	}
	if _, err := New(TrustDomain(td), AllowRole(identity.RoleUnsealer, "10.0.0.20")); err == nil {
		t.Fatal("engine without targets accepted")
	}
}

func isReason(err error, r Reason) bool {
	d, ok := AsDenial(err)
	return ok && d.Reason == r
}

// FuzzDecide: arbitrary identities, addresses and targets never panic, and
// nothing outside the configured grants is ever allowed.
func FuzzDecide(f *testing.F) {
	f.Add("spiffe://keyshare.test/unsealer/u1", "127.0.0.40", "vault-1", uint64(3))
	f.Add("spiffe://keyshare.test/operator/alice", "127.0.2.1", "vault-2", uint64(3))
	f.Add("spiffe://keyshare.test/holder/a", "::1", "", uint64(0))
	f.Add("", "", "\x00", uint64(1))
	f.Fuzz(func(t *testing.T, id, src, target string, gen uint64) {
		e := newEngine(t)
		addr, _ := netip.ParseAddr(src)
		req := Request{PeerID: id, Source: addr, Target: target, Generation: gen, Now: t0,
			Status: TargetStatus{CheckedAt: t0, Initialized: true, Sealed: true}, Held: []uint64{3}}
		g, err := e.Decide(req)
		if err != nil {
			if _, ok := AsDenial(err); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if gen != 3 || !strings.HasPrefix(id, "spiffe://keyshare.test/") {
			t.Fatalf("allowed %q gen %d", id, gen)
		}
		if !g.Operator && !strings.Contains(id, "/unsealer/") {
			t.Fatalf("allowed non-unsealer %q by %s", id, g.Rule)
		}
	})
}
