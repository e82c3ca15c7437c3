package holder

import (
	"strconv"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/conffuzz"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestGrantWithoutCIDRsRefused: a grant with no cidrs used to mean "from any
// source". It is refused at load, naming the file, the key and what to
// write; a holder grant is refused the same way.
func TestGrantWithoutCIDRsRefused(t *testing.T) {
	const grant = "    - {role: unsealer, cidrs: [127.0.0.20/32]}"
	base := conffuzz.Example(t, holderExample, "keyshare.example", grant)
	for _, tc := range []struct {
		name, line string
		want       []string
	}{
		{name: "ok/with-cidrs", line: grant},
		{name: "fail/role-without-cidrs", line: "    - {role: unsealer}",
			want: []string{"policy.allow_roles[0] (unsealer): cidrs is missing", "cidrs: [10.0.0.20/32]"}},
		{name: "fail/role-with-empty-cidrs", line: "    - {role: unsealer, cidrs: []}",
			want: []string{"policy.allow_roles[0] (unsealer): cidrs is missing"}},
		{name: "fail/id-without-cidrs", line: "    - {role: unsealer, cidrs: [127.0.0.20/32]}\n  allow_ids:\n    - {id: \"spiffe://keyshare.example/unsealer/u2\"}",
			want: []string{"policy.allow_ids[0] (spiffe://keyshare.example/unsealer/u2): cidrs is missing"}},
		{name: "fail/holder-role", line: "    - {role: holder, cidrs: [127.0.0.0/24]}",
			want: []string{"policy.allow_roles[0] (holder)", "holders are never allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(base, grant, tc.line, 1)
			if strings.Contains(tc.line, "allow_ids") {
				text = strings.Replace(text, "  allow_ids: []\n", "", 1)
			}
			p, err := conffuzz.LoadText(t, text, loadShape)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("config loaded")
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestConfigCraftedIDs: the holder's config gives each crafted ID the role
// the identity model gives it. id is accepted only for a holder of the
// trust domain the policy's other IDs are in, and an allow_ids grant only
// for an unsealer of that trust domain.
func TestConfigCraftedIDs(t *testing.T) {
	conffuzz.CheckCraftedIDs(t, holderExample, loadShape,
		conffuzz.IDField{Key: "id", Old: "id: spiffe://ks.test/holder/a\n",
			New:     func(id string) string { return "id: " + strconv.Quote(id) + "\n" },
			Accepts: func(c identitytest.Case) bool { return c.Local(identity.RoleHolder) },
			Want:    "ok only for a holder of " + identitytest.TrustDomain},
		conffuzz.IDField{Key: "policy.allow_ids id", Old: "  allow_ids: []\n",
			New: func(id string) string {
				return "  allow_ids: [{id: " + strconv.Quote(id) + ", cidrs: [127.0.0.21/32]}]\n"
			},
			Accepts: func(c identitytest.Case) bool { return c.Local(identity.RoleUnsealer) },
			Want:    "ok only for an unsealer of " + identitytest.TrustDomain})
}
