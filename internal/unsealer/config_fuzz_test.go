package unsealer

import (
	"testing"

	"github.com/keyshare/keyshare/internal/testkit/conffuzz"
)

// The config fuzz target writes arbitrary bytes to a .yaml file and loads
// it the way the daemon does (conffuzz.Load). Its seeds are
// configs/unsealer.yaml with one key changed each, so that every seed
// reaches the check it names (TestUnsealerFuzzSeeds) instead of failing on a
// key that does not exist. The holder's target is in internal/holder.
var unsealerSeeds = []conffuzz.Seed{
	{Name: "crafted-id", Old: "id: spiffe://keyshare.example/unsealer/u1", New: "id: spiffe://keyshare.example/holder/unsealer/u1", Want: "id:"},
	{Name: "holder-id-number", Old: `{id: "spiffe://keyshare.example/holder/c",`, New: `{id: 1,`, Want: "holders[2].id"},
	{Name: "holder-address-map", Old: `address: "127.0.0.13:7400"`, New: `address: {a: b}`, Want: "address"},
	{Name: "foreign-holder", Old: `{id: "spiffe://keyshare.example/holder/c",`, New: `{id: "spiffe://other.example/holder/c",`, Want: "trust domain"},
	{Name: "negative-poll", Old: "poll_interval: 1s", New: "poll_interval: -1s", Want: "watch"},
	{Name: "zero-holder-timeout", Old: "holder_timeout: 3s", New: "holder_timeout: 0s", Want: "watch"},
	{Name: "threshold-300", Old: "threshold: 3", New: "threshold: 300", Want: "plan"},
	{Name: "shares-negative", Old: "shares: 5", New: "shares: -1", Want: "plan"},
	{Name: "source-addr", Old: "source_addr: 127.0.0.20", New: "source_addr: 127.0.0.300", Want: "source_addr"},
}

const unsealerExample = "../../configs/unsealer.yaml"

func loadUnsealerShape(p string) (any, error) { return LoadShape(p, nil) }

func TestUnsealerFuzzSeeds(t *testing.T) {
	conffuzz.CheckSeeds(t, unsealerExample, unsealerSeeds, loadUnsealerShape)
}

func FuzzUnsealerLoadShape(f *testing.F) {
	conffuzz.Fuzz(f, unsealerExample, unsealerSeeds, loadUnsealerShape)
}
