package gossip

import (
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestCraftedIDs: gossip admits a node name (in the Alive/Merge delegates)
// and a certificate ID (in the transport) exactly when the identity model
// says it is a holder or an unsealer of the local trust domain, and its
// metadata may only repeat the role the model gives its name.
func TestCraftedIDs(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString(identitytest.TrustDomain)
	pol := peerPolicy{trustDomain: td, roles: DefaultRoles}
	adm := &admission{t: &Transport{policy: pol}, self: "spiffe://ks.test/holder/self", selfAddr: "127.0.0.1:1"}
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			want := tc.Local(identity.RoleHolder) || tc.Local(identity.RoleUnsealer)
			_, role, err := parseMemberID(tc.ID)
			if (err == nil) != tc.Valid() || role != tc.Role {
				t.Fatalf("parseMemberID(%q) = %q, %v; the model says role %q", tc.ID, role, err, tc.Role)
			}
			if tc.Valid() {
				if err := pol.check(spiffeid.RequireFromString(tc.ID)); (err == nil) != want {
					t.Fatalf("transport check(%q): %v; want admitted=%v", tc.ID, err, want)
				}
			}
			node := func(r identity.Role) *memberlist.Node {
				b, err := EncodeMeta(Meta{Role: r})
				if err != nil {
					t.Fatal(err)
				}
				return &memberlist.Node{Name: tc.ID, Addr: net.IPv4(127, 0, 0, 2), Port: 7946, Meta: b}
			}
			if err := adm.static(node(""), "127.0.0.2:7946"); (err == nil) != want {
				t.Fatalf("static(%q): %v; want admitted=%v", tc.ID, err, want)
			}
			if want {
				if err := adm.static(node(tc.Role), "127.0.0.2:7946"); err != nil {
					t.Fatalf("static(%q) with its own role in metadata: %v", tc.ID, err)
				}
				other := identity.RoleHolder
				if tc.Role == identity.RoleHolder {
					other = identity.RoleUnsealer
				}
				if err := adm.static(node(other), "127.0.0.2:7946"); err == nil {
					t.Fatalf("static(%q) with metadata role %q: admitted", tc.ID, other)
				}
			}
		})
	}
}
