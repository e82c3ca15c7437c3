package holder

import (
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/conffuzz"
)

// holderSeeds are configs/holder-a.yaml with one key changed each, so that
// every seed reaches the check it names (TestHolderFuzzSeeds) instead of
// failing on a key that does not exist.
var holderSeeds = []conffuzz.Seed{
	{Name: "crafted-id", Old: "id: spiffe://keyshare.example/holder/a", New: "id: spiffe://keyshare.example/unsealer/holder/a", Want: "id:"},
	{Name: "listen-list", Old: "listen: 127.0.0.11:7400", New: "listen: [1, 2]", Want: "listen"},
	{Name: "status-age", Old: "max_status_age: 5s", New: "max_status_age: -5s", Want: "max status age"},
	{Name: "huge-burst", Old: "burst: 10", New: "burst: 99999999999999999999", Want: "burst"},
	{Name: "node-name-map", Old: "{name: vault-1,", New: "{name: {},", Want: "name"},
	{Name: "no-cidrs", Old: "{role: unsealer, cidrs: [127.0.0.20/32]}", New: "{role: unsealer}", Want: "cidrs is missing"},
	{Name: "holder-grant", Old: "{role: unsealer, cidrs: [127.0.0.20/32]}", New: "{role: holder, cidrs: [127.0.0.20/32]}", Want: "holders are never allowed"},
	{Name: "foreign-operator", Old: "spiffe://keyshare.example/operator/oncall", New: "spiffe://other.example/operator/oncall", Want: "trust domain"},
	{Name: "rekey-approvals", Old: "operator_burst: 3", New: "operator_burst: 3\n  rekey_approvals: 0", Want: "rekey approvals"},
	{Name: "two-seal-keys", Old: `seal_key_file: ""`, New: `seal_key_file: /k`, Want: "exactly one of"},
}

const holderExample = "../../configs/holder-a.yaml"

func loadShape(p string) (any, error) { return LoadShape(p) }

func TestHolderFuzzSeeds(t *testing.T) {
	conffuzz.CheckSeeds(t, holderExample, holderSeeds, loadShape)
}

func FuzzHolderLoadShape(f *testing.F) {
	conffuzz.Fuzz(f, holderExample, holderSeeds, loadShape)
}
