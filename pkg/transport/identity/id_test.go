package identity

import (
	"crypto/tls"
	"errors"
	"net/url"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestParseID(t *testing.T) {
	type tc struct {
		id   string
		role Role
		name string
	}
	run := func(t *testing.T, c tc) {
		id, err := spiffeid.FromString(c.id)
		if err != nil {
			t.Fatal(err)
		}
		role, name, err := ParseID(id)
		if c.role == "" {
			if err == nil {
				t.Fatalf("ParseID(%s) = %s, %s; want an error", c.id, role, name)
			}
			return
		}
		if err != nil || role != c.role || name != c.name {
			t.Fatalf("ParseID(%s) = %q, %q, %v; want %q, %q", c.id, role, name, err, c.role, c.name)
		}
	}
	for name, c := range map[string]tc{
		"ok/holder":        {id: "spiffe://ks.test/holder/h1", role: RoleHolder, name: "h1"},
		"ok/unsealer":      {id: "spiffe://ks.test/unsealer/u1", role: RoleUnsealer, name: "u1"},
		"ok/operator":      {id: "spiffe://ks.test/operator/alice", role: RoleOperator, name: "alice"},
		"fail/root":        {id: "spiffe://ks.test"},
		"fail/no-name":     {id: "spiffe://ks.test/holder"},
		"fail/extra":       {id: "spiffe://ks.test/holder/h1/x"},
		"fail/role-case":   {id: "spiffe://ks.test/Holder/h1"},
		"fail/unknown":     {id: "spiffe://ks.test/admin/root"},
		"fail/role-prefix": {id: "spiffe://ks.test/holders/h1"},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
	if _, _, err := ParseID(spiffeid.ID{}); err == nil {
		t.Fatal("ParseID of the zero ID succeeded")
	}
}

func TestAuthorizer(t *testing.T) {
	h1 := spiffeid.RequireFromString("spiffe://ks.test/holder/h1")
	h2 := spiffeid.RequireFromString("spiffe://ks.test/holder/h2")
	u1 := spiffeid.RequireFromString("spiffe://ks.test/unsealer/u1")
	op := spiffeid.RequireFromString("spiffe://ks.test/operator/alice")
	other := spiffeid.RequireFromString("spiffe://other.test/holder/h1")
	type tc struct {
		a     Authorizer
		id    spiffeid.ID
		allow bool
	}
	run := func(t *testing.T, c tc) {
		err := c.a.Authorize(c.id)
		if (err == nil) != c.allow {
			t.Fatalf("Authorize(%s) by %s = %v; want allowed=%v", c.id, c.a, err, c.allow)
		}
	}
	for name, c := range map[string]tc{
		"ok/exact-id":             {a: AllowIDs(h1), id: h1, allow: true},
		"ok/role":                 {a: AllowRoles(RoleUnsealer), id: u1, allow: true},
		"ok/or":                   {a: AllowRoles(RoleUnsealer).Or(AllowIDs(op)), id: op, allow: true},
		"fail/other-id-same-role": {a: AllowIDs(h1), id: h2},
		"fail/wrong-role":         {a: AllowRoles(RoleUnsealer), id: op},
		"fail/other-trust-domain": {a: AllowIDs(h1), id: other},
		"fail/zero-authorizer":    {a: Authorizer{}, id: h1},
		"fail/unparsable-id":      {a: AllowRoles(RoleHolder), id: spiffeid.RequireFromString("spiffe://ks.test/holder/h1/x")},
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
	if err := (Authorizer{Roles: []Role{"root"}}).Validate(); err == nil {
		t.Fatal("Validate accepted an unknown role")
	}
	bad := spiffeid.RequireFromURI(&url.URL{Scheme: "spiffe", Host: "ks.test", Path: "/x"})
	if err := AllowIDs(bad).Validate(); err == nil {
		t.Fatal("Validate accepted a malformed ID")
	}
	if err := AllowIDs(h1).Or(AllowRoles(RoleOperator)).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFromConnectionStateWithoutPeer(t *testing.T) {
	if _, _, err := FromConnectionState(tls.ConnectionState{}); !errors.Is(err, ErrNoPeerIdentity) {
		t.Fatalf("FromConnectionState before a handshake: %v; want ErrNoPeerIdentity", err)
	}
}
