package lifecycle_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/lifecycle"
)

// TestRekeyStatusEmptyHolders: with every holder empty, --status never
// says "nothing to settle": keyshare holds no key, so nothing would unseal
// Vault. An initialized, unsealed node gets the adoption command; a node
// whose state it cannot read gets 'unsealer status', which tells init from
// adoption.
func TestRekeyStatusEmptyHolders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWorld(t, false) // holders empty, vault uninitialized (and so sealed)
	for _, c := range []struct {
		name, want string
		setup      func()
	}{
		{"uninitialized", "run 'unsealer status'", func() {}},
		{"initialized-sealed", "run 'unsealer status'", func() { w.fake.SetInitialized(true) }},
		{"initialized-unsealed", "'unsealer rekey --old-shares-file F...'", func() { w.fake.Unseal() }},
	} {
		c.setup()
		var b bytes.Buffer
		st := lifecycle.ReadRekeyState(ctx, w.recoverConfig(false))
		st.Print(&b)
		if out := b.String(); !strings.Contains(st.Settle, c.want) || strings.Contains(out, "nothing to settle") {
			t.Errorf("%s: settle %q; want it to contain %q\n%s", c.name, st.Settle, c.want, out)
		}
	}
}
