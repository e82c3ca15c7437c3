package policy

import (
	"net/netip"
	"testing"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestCraftedIDs: the engine gives each crafted ID the role the identity
// model gives it. Only a local unsealer (the role grant) and the listed
// local operator are authorized; IsHolderID is true for holder IDs of any
// trust domain and nothing else; an exact-ID grant is accepted only for a
// local unsealer.
func TestCraftedIDs(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.1")
	e, err := New(TrustDomain(identitytest.TrustDomain), AllowRole(identity.RoleUnsealer, "127.0.0.0/8"),
		AllowOperator("spiffe://ks.test/operator/alice", "127.0.0.0/8"), KnownTargets("vault-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			g, err := e.Authorize(tc.ID, src)
			wantAllowed := tc.Local(identity.RoleUnsealer) || tc.Local(identity.RoleOperator)
			if (err == nil) != wantAllowed {
				t.Fatalf("Authorize(%q) = %+v, %v; want allowed=%v", tc.ID, g, err, wantAllowed)
			}
			if err == nil && g.Operator != (tc.Role == identity.RoleOperator) {
				t.Fatalf("Authorize(%q): operator=%v for role %q", tc.ID, g.Operator, tc.Role)
			}
			if got := IsHolderID(tc.ID); got != (tc.Role == identity.RoleHolder) {
				t.Fatalf("IsHolderID(%q) = %v; the model says role %q", tc.ID, got, tc.Role)
			}
			_, err = New(TrustDomain(identitytest.TrustDomain), AllowID(tc.ID, "127.0.0.1/32"), KnownTargets("vault-1"))
			if (err == nil) != tc.Local(identity.RoleUnsealer) {
				t.Fatalf("AllowID(%q): %v; want ok only for a local unsealer", tc.ID, err)
			}
			_, err = New(TrustDomain(identitytest.TrustDomain), AllowOperator(tc.ID, "127.0.0.1/32"), KnownTargets("vault-1"))
			if (err == nil) != tc.Local(identity.RoleOperator) {
				t.Fatalf("AllowOperator(%q): %v; want ok only for a local operator", tc.ID, err)
			}
		})
	}
}
