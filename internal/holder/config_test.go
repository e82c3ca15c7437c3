package holder

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/identity/identitytest"
)

// TestGrantWithoutCIDRsRefused: a grant with no cidrs used to mean "from any
// source". It is refused at load, naming the file, the key and what to
// write; a holder grant is refused the same way.
func TestGrantWithoutCIDRsRefused(t *testing.T) {
	base, err := os.ReadFile("../../configs/holder-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const grant = "    - {role: unsealer, cidrs: [127.0.0.20/32]}"
	if !strings.Contains(string(base), grant) {
		t.Fatalf("configs/holder-a.yaml no longer has the line %q", grant)
	}
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
			text := strings.Replace(string(base), grant, tc.line, 1)
			if strings.Contains(tc.line, "allow_ids") {
				text = strings.Replace(text, "  allow_ids: []\n", "", 1)
			}
			p := filepath.Join(t.TempDir(), "holder.yaml")
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadShape(p)
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
	b, err := os.ReadFile("../../configs/holder-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(string(b), "keyshare.example", identitytest.TrustDomain)
	const idLine, grants = "id: spiffe://ks.test/holder/a\n", "  allow_ids: []\n"
	if !strings.Contains(base, idLine) || !strings.Contains(base, grants) {
		t.Fatalf("configs/holder-a.yaml no longer has %q and %q", idLine, grants)
	}
	load := func(t *testing.T, text string) error {
		p := filepath.Join(t.TempDir(), "holder.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadShape(p)
		return err
	}
	for _, tc := range identitytest.Crafted {
		t.Run(tc.Name, func(t *testing.T) {
			err := load(t, strings.Replace(base, idLine, "id: "+strconv.Quote(tc.ID)+"\n", 1))
			if (err == nil) != tc.Local(identity.RoleHolder) {
				t.Fatalf("id %q: %v; want ok only for a holder of %s", tc.ID, err, identitytest.TrustDomain)
			}
			grant := "  allow_ids: [{id: " + strconv.Quote(tc.ID) + ", cidrs: [127.0.0.21/32]}]\n"
			err = load(t, strings.Replace(base, grants, grant, 1))
			if (err == nil) != tc.Local(identity.RoleUnsealer) {
				t.Fatalf("policy.allow_ids id %q: %v; want ok only for an unsealer of %s", tc.ID, err, identitytest.TrustDomain)
			}
		})
	}
}
