package unsealer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/rig"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// TestStatusSaysWhatIsMissing checks the table and the verdict from a
// healthy cluster down to one holder alive. Every case starts its own
// deployment and stops the holders it names, so each passes alone.
func TestStatusSaysWhatIsMissing(t *testing.T) {
	type tc struct {
		name      string
		stop      []string // holder servers to stop first
		reachable int
		missing   string // "" for ok
	}
	run := func(t *testing.T, tc tc) {
		r := rig.New(t, addrs)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nodes := []*vaultnode.Node{r.Vault}
		for _, name := range tc.stop {
			r.Servers[name].Stop()
		}
		rep := unsealer.Status(ctx, nodes, r.Holders)
		if rep.SharesReachable != tc.reachable {
			t.Fatalf("shares reachable = %d, want %d", rep.SharesReachable, tc.reachable)
		}
		if tc.missing == "" && rep.Missing != "" || !strings.Contains(rep.Missing, tc.missing) {
			t.Fatalf("missing = %q, want %q", rep.Missing, tc.missing)
		}
		var out bytes.Buffer
		rep.Print(&out)
		for _, want := range []string{"vault-1", "HOLDER", "spiffe://keyshare.test/holder/a", "shares reachable"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("table lacks %q:\n%s", want, out.String())
			}
		}
		if !rep.Nodes[0].Sealed || rep.Nodes[0].HARole != "sealed" {
			t.Fatalf("node row = %+v, want sealed", rep.Nodes[0])
		}
	}
	for _, c := range []tc{
		{name: "ok/all-holders", reachable: 5},
		{name: "ok/holder-c-down", stop: []string{"c"}, reachable: 4},
		{name: "fail/only-a", stop: []string{"b", "c"}, reachable: 0, missing: "1 of 3 holders answer, 2 needed to agree on a manifest; they hold 2 of 3 shares (generation 1)"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
