package policy

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// FuzzDecideRules drives every field of a Request, not only the identity,
// and checks that an allowed request meets every rule of newEngine's
// configuration: the grant's source CIDRs, the hold, the target, the
// generation, a fresh "initialized and sealed" check of the holder's own,
// and that Authorize agrees with Decide on the rule. FuzzDecide covers the
// identity alone.
func FuzzDecideRules(f *testing.F) {
	f.Add("spiffe://keyshare.test/unsealer/u1", []byte{127, 0, 0, 40}, "vault-2", uint64(3), uint64(3), uint64(0), int64(time.Second), byte(3), false)
	f.Add("spiffe://keyshare.test/unsealer/pinned", []byte{127, 0, 1, 5}, "vault-1", uint64(3), uint64(4), uint64(4), int64(0), byte(3), false)
	f.Add("spiffe://keyshare.test/operator/alice", []byte{127, 0, 2, 9}, "vault-3", uint64(5), uint64(3), uint64(5), int64(-time.Second), byte(7), false)
	f.Add("spiffe://keyshare.test/unsealer/u1", []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "vault-2", uint64(3), uint64(3), uint64(0), int64(6*time.Second), byte(3), true)
	f.Add("spiffe://keyshare.test/unsealer/u1", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 40}, "vault-2", uint64(0), uint64(0), uint64(0), int64(0), byte(3), false)
	f.Fuzz(func(t *testing.T, id string, src []byte, target string, gen, held1, held2 uint64, age int64, status byte, hold bool) {
		e := newEngine(t)
		addr, _ := netip.AddrFromSlice(src)
		st := TargetStatus{Initialized: status&1 != 0, Sealed: status&2 != 0}
		if status&4 == 0 {
			st.CheckedAt = t0.Add(-time.Duration(age))
		}
		if hold {
			e.SetHold("fuzz")
		}
		req := Request{PeerID: id, Source: addr, Target: target, Generation: gen, Now: t0, Status: st, Held: []uint64{held1, held2}}
		g, err := e.Decide(req)
		if err != nil {
			d, ok := AsDenial(err)
			if !ok || d.Reason == "" {
				t.Fatalf("untyped denial %v", err)
			}
			return
		}
		switch {
		case hold:
			t.Fatal("allowed while on hold")
		case target != "vault-1" && target != "vault-2" && target != "vault-3":
			t.Fatalf("allowed unknown target %q", target)
		case gen == 0 || !slices.Contains(req.Held, gen):
			t.Fatalf("allowed generation %d, held %v", gen, req.Held)
		case !st.Initialized || !st.Sealed || st.CheckedAt.IsZero():
			t.Fatalf("allowed on status %+v", st)
		case t0.Sub(st.CheckedAt) > DefaultMaxStatusAge:
			t.Fatalf("allowed on a check %s old", t0.Sub(st.CheckedAt))
		}
		a := addr.Unmap()
		var cidr string
		switch g.Rule {
		case "role:unsealer":
			cidr = "127.0.0.0/24"
		case "id:spiffe://keyshare.test/unsealer/pinned":
			cidr = "127.0.1.5/32"
		case "operator:spiffe://keyshare.test/operator/alice":
			cidr = "127.0.2.0/24"
		default:
			t.Fatalf("allowed %q by unexpected rule %q", id, g.Rule)
		}
		if !netip.MustParsePrefix(cidr).Contains(a) {
			t.Fatalf("allowed %q from %s by %s (bound to %s)", id, addr, g.Rule, cidr)
		}
		if g.Operator != (g.Rule == "operator:spiffe://keyshare.test/operator/alice") {
			t.Fatalf("grant %+v: operator flag disagrees with the rule", g)
		}
		ag, err := e.Authorize(id, addr)
		if err != nil || ag != g {
			t.Fatalf("Decide granted %+v but Authorize says %+v, %v", g, ag, err)
		}
	})
}
