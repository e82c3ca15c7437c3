package identity_test

import (
	"testing"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestParseCrafted: the model itself gives each crafted ID the role the
// table says, and nothing else. Every consumer is tested against the same
// table (policy, gossip, the holder and unsealer configs).
func TestParseCrafted(t *testing.T) {
	td, err := identity.ParseTrustDomain(identitytest.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			id, err := identity.Parse(tc.ID)
			if !tc.Valid() {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v; want an error", tc.ID, id)
				}
				if identity.HasRole(tc.ID, identity.RoleHolder) || identity.HasRole(tc.ID, identity.RoleUnsealer) {
					t.Fatalf("HasRole(%q) is true for an invalid ID", tc.ID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.ID, err)
			}
			if id.Role != tc.Role || id.String() != tc.ID {
				t.Fatalf("Parse(%q) = role %q, %s; want role %q", tc.ID, id.Role, id, tc.Role)
			}
			if id.SPIFFE.MemberOf(td) == tc.Foreign {
				t.Fatalf("Parse(%q): member of %s = %v; want %v", tc.ID, td, !tc.Foreign, !tc.Foreign)
			}
			_, err = identity.ParseIn(tc.ID, td, tc.Role)
			if (err == nil) != !tc.Foreign {
				t.Fatalf("ParseIn(%q, %s): %v", tc.ID, td, err)
			}
			for _, r := range identity.Roles {
				if _, err := identity.ParseAs(tc.ID, r); (err == nil) != (r == tc.Role) {
					t.Fatalf("ParseAs(%q, %s): %v", tc.ID, r, err)
				}
			}
		})
	}
}

func TestParseTrustDomain(t *testing.T) {
	for s, ok := range map[string]bool{"ks.test": true, "KS.test": false, "spiffe://ks.test": false, "": false, "ks.test/x": false} {
		if _, err := identity.ParseTrustDomain(s); (err == nil) != ok {
			t.Errorf("ParseTrustDomain(%q): %v; want ok=%v", s, err, ok)
		}
	}
}
