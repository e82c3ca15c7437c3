package unsealer

import (
	"strings"
	"testing"
)

// TestMissingSuggestsAdopting: an initialized Vault and empty holders get
// the adoption command, never 'unsealer init' (which refuses an
// initialized Vault); an uninitialized one still gets init, and a
// generation staged with nothing committed gets --recover.
func TestMissingSuggestsAdopting(t *testing.T) {
	type tc struct {
		name        string
		initialized bool
		alive       int    // of 3 holders
		gen, staged uint64 // of holder a
		want, never string
	}
	run := func(t *testing.T, c tc) {
		r := Report{Nodes: []NodeReport{{Name: "vault-1", Reachable: true, Initialized: c.initialized, Sealed: false}}}
		for i, id := range []string{"a", "b", "c"} {
			h := HolderReport{ID: id, Alive: i < c.alive}
			if i == 0 {
				h.Generation, h.Staged = c.gen, c.staged
			}
			r.Holders = append(r.Holders, h)
		}
		got := r.missing(2, 3)
		if !strings.Contains(got, c.want) || c.never != "" && strings.Contains(got, c.never) {
			t.Fatalf("missing = %q; want %q and never %q", got, c.want, c.never)
		}
	}
	for _, c := range []tc{
		{name: "ok/initialized-empty-holders", initialized: true, alive: 3, want: "unsealer rekey -c <operator config> --old-shares-file", never: "unsealer init"},
		{name: "ok/initialized-a-holder-down", initialized: true, alive: 2, want: "start every holder, then adopt", never: "unsealer init"},
		{name: "ok/uninitialized", alive: 3, want: "run 'unsealer init'", never: "--old-shares-file"},
		{name: "ok/staged-nothing-committed", initialized: true, alive: 3, staged: 1, want: "unsealer rekey --recover", never: "unsealer init"},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}
