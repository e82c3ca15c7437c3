package unsealer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestConfigCraftedIDs: the unsealer's config gives each crafted ID the
// role the identity model gives it. id is accepted for an unsealer or an
// operator of the holders' trust domain; a holder entry only for a holder
// of the unsealer's trust domain.
func TestConfigCraftedIDs(t *testing.T) {
	b, err := os.ReadFile("../../configs/unsealer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(string(b), "keyshare.example", identitytest.TrustDomain)
	const idLine, holderC = "id: spiffe://ks.test/unsealer/u1\n", `{id: "spiffe://ks.test/holder/c",`
	if !strings.Contains(base, idLine) || !strings.Contains(base, holderC) {
		t.Fatalf("configs/unsealer.yaml no longer has %q and %q", idLine, holderC)
	}
	load := func(t *testing.T, text string) error {
		p := filepath.Join(t.TempDir(), "unsealer.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadShape(p, nil)
		return err
	}
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			err := load(t, strings.Replace(base, idLine, "id: "+strconv.Quote(tc.ID)+"\n", 1))
			want := tc.Local(identity.RoleUnsealer) || tc.Local(identity.RoleOperator)
			if (err == nil) != want {
				t.Fatalf("id %q: %v; want ok=%v", tc.ID, err, want)
			}
			err = load(t, strings.Replace(base, holderC, "{id: "+strconv.Quote(tc.ID)+",", 1))
			if (err == nil) != tc.Local(identity.RoleHolder) {
				t.Fatalf("holders[2].id %q: %v; want ok only for a holder of %s", tc.ID, err, identitytest.TrustDomain)
			}
		})
	}
}
