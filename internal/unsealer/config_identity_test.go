package unsealer

import (
	"strconv"
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/conffuzz"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestConfigCraftedIDs: the unsealer's config gives each crafted ID the
// role the identity model gives it. id is accepted for an unsealer or an
// operator of the holders' trust domain; a holder entry only for a holder
// of the unsealer's trust domain.
func TestConfigCraftedIDs(t *testing.T) {
	conffuzz.CheckCraftedIDs(t, unsealerExample, loadUnsealerShape,
		conffuzz.IDField{Key: "id", Old: "id: spiffe://ks.test/unsealer/u1\n",
			New: func(id string) string { return "id: " + strconv.Quote(id) + "\n" },
			Accepts: func(c identitytest.Case) bool {
				return c.Local(identity.RoleUnsealer) || c.Local(identity.RoleOperator)
			},
			Want: "ok only for an unsealer or an operator of " + identitytest.TrustDomain},
		conffuzz.IDField{Key: "holders[2].id", Old: `{id: "spiffe://ks.test/holder/c",`,
			New:     func(id string) string { return "{id: " + strconv.Quote(id) + "," },
			Accepts: func(c identitytest.Case) bool { return c.Local(identity.RoleHolder) },
			Want:    "ok only for a holder of " + identitytest.TrustDomain})
}
