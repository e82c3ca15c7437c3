// Package identitytest holds the crafted SPIFFE IDs every consumer of the
// identity model is tested against, with the answer the model gives for
// each. A consumer (policy, gossip, a config) must give a role to exactly
// the IDs that have one here, and the same role.
package identitytest

import "github.com/keyshare/keyshare/pkg/transport/identity"

// TrustDomain is the trust domain the cases are written for.
const TrustDomain = "ks.test"

// Case is one crafted ID and what the model says about it.
type Case struct {
	// Name names the trick, for subtest names.
	Name string
	// ID is the crafted string.
	ID string
	// Role is the role the model gives it; "" when it is no keyshare ID.
	Role identity.Role
	// Foreign is true when it is a keyshare ID of another trust domain.
	Foreign bool
}

// Valid reports whether the model accepts the ID at all.
func (c Case) Valid() bool { return c.Role != "" }

// Local reports whether the ID is a keyshare ID of TrustDomain with the
// role r.
func (c Case) Local(r identity.Role) bool { return c.Role == r && !c.Foreign }

// Crafted are the cases. The valid ones are first.
var Crafted = []Case{
	{Name: "ok/holder", ID: "spiffe://ks.test/holder/h1", Role: identity.RoleHolder},
	{Name: "ok/unsealer", ID: "spiffe://ks.test/unsealer/u1", Role: identity.RoleUnsealer},
	{Name: "ok/operator", ID: "spiffe://ks.test/operator/alice", Role: identity.RoleOperator},
	{Name: "foreign/holder", ID: "spiffe://other.test/holder/h1", Role: identity.RoleHolder, Foreign: true},
	{Name: "foreign/unsealer", ID: "spiffe://other.test/unsealer/u1", Role: identity.RoleUnsealer, Foreign: true},
	{Name: "foreign/operator", ID: "spiffe://other.test/operator/alice", Role: identity.RoleOperator, Foreign: true},
	{Name: "foreign/suffix-domain", ID: "spiffe://ks.test.evil/unsealer/u1", Role: identity.RoleUnsealer, Foreign: true},
	{Name: "fail/holder-under-unsealer", ID: "spiffe://ks.test/unsealer/holder/x"},
	{Name: "fail/unsealer-under-holder", ID: "spiffe://ks.test/holder/unsealer/x"},
	{Name: "fail/operator-under-holder", ID: "spiffe://ks.test/holder/x/operator"},
	{Name: "fail/upper-role", ID: "spiffe://ks.test/Holder/h1"},
	{Name: "fail/upper-role-all", ID: "spiffe://ks.test/UNSEALER/u1"},
	{Name: "fail/upper-domain", ID: "spiffe://KS.test/unsealer/u1"},
	{Name: "fail/upper-scheme", ID: "SPIFFE://ks.test/unsealer/u1"},
	{Name: "fail/dot-dot", ID: "spiffe://ks.test/holder/../unsealer/u1"},
	{Name: "fail/dot", ID: "spiffe://ks.test/./unsealer/u1"},
	{Name: "fail/double-slash", ID: "spiffe://ks.test//unsealer/u1"},
	{Name: "fail/trailing-slash", ID: "spiffe://ks.test/unsealer/u1/"},
	{Name: "fail/no-name", ID: "spiffe://ks.test/unsealer/"},
	{Name: "fail/role-only", ID: "spiffe://ks.test/unsealer"},
	{Name: "fail/role-prefix", ID: "spiffe://ks.test/unsealers/u1"},
	{Name: "fail/unknown-role", ID: "spiffe://ks.test/admin/root"},
	{Name: "fail/percent", ID: "spiffe://ks.test/unsealer/u%2F1"},
	{Name: "fail/query", ID: "spiffe://ks.test/unsealer/u1?role=holder"},
	{Name: "fail/fragment", ID: "spiffe://ks.test/unsealer/u1#x"},
	{Name: "fail/port", ID: "spiffe://ks.test:443/unsealer/u1"},
	{Name: "fail/userinfo", ID: "spiffe://holder@ks.test/unsealer/u1"},
	{Name: "fail/space", ID: " spiffe://ks.test/unsealer/u1"},
	{Name: "fail/newline", ID: "spiffe://ks.test/unsealer/u1\n"},
	{Name: "fail/other-scheme", ID: "https://ks.test/unsealer/u1"},
	{Name: "fail/no-scheme", ID: "ks.test/unsealer/u1"},
	{Name: "fail/empty", ID: ""},
}
