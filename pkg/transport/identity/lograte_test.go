package identity

import (
	"strings"
	"testing"
	"time"
)

// TestRefusedHandshakesLogBounded: 40 handshakes refused from one address
// in a minute give refusalBurst warnings, not 40; after the window the
// next one is logged again, with the count left out. Before, each refusal
// was a warning: any host could fill the holder's log.
func TestRefusedHandshakesLogBounded(t *testing.T) {
	p := newPKI(t, "ks.test")
	var logs logBuffer
	opts := p.writeLeaf(t, p.leaf(t, RoleHolder, "h1"), "holder")
	opts.Logger = logs.logger()
	server := mustNew(t, opts)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	server.refusals.Now = func() time.Time { return now }
	intruder := rawClient(p.leaf(t, RoleOperator, "mallory"))
	cfg := server.ServerConfig(AllowRoles(RoleUnsealer))
	for range 40 {
		if o := handshake(t, cfg, intruder); o.ok() {
			t.Fatal("mallory's handshake succeeded")
		}
	}
	count := func() int { return strings.Count(logs.String(), `msg="refused TLS client"`) }
	if n := count(); n != refusalBurst {
		t.Fatalf("%d warnings for 40 refusals from one address, want %d", n, refusalBurst)
	}
	now = now.Add(refusalWindow)
	if o := handshake(t, cfg, intruder); o.ok() {
		t.Fatal("mallory's handshake succeeded")
	}
	if n := count(); n != refusalBurst+1 || !strings.Contains(logs.String(), "not_logged_before=35") {
		t.Fatalf("after the window: %d warnings, log:\n%s", n, logs.String())
	}
}
