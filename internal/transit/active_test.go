package transit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/vaultfake"
)

// fakeCluster starts n unsealed fake Vault nodes (standbys unless made
// active) and a client listing them all.
func fakeCluster(t *testing.T, n int) ([]*vaultfake.Vault, *Client) {
	t.Helper()
	ca, err := devpki.NewCA("keyshare.test")
	if err != nil {
		t.Fatal(err)
	}
	var fakes []*vaultfake.Vault
	var addrs []string
	for i := range n {
		f := vaultfake.StartUnsealed(t, ca, fmt.Sprintf("127.0.0.%d", 171+i), fmt.Sprintf("v%d", i))
		f.SetStandby(true)
		fakes, addrs = append(fakes, f), append(addrs, f.URL())
	}
	c, err := New(Options{Addrs: addrs, CACert: ca.CertPEM, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return fakes, c
}

func TestPreferActive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fakes, c := fakeCluster(t, 3)

	// No active node: nothing changes, and the error says what each said.
	fakes[0].Stop()
	fakes[1].Seal()
	if got, err := c.PreferActive(ctx); err == nil || got != "" || c.Preferred() != fakes[0].URL() ||
		!strings.Contains(err.Error(), fakes[0].URL()+" unreachable") ||
		!strings.Contains(err.Error(), fakes[1].URL()+" sealed") ||
		!strings.Contains(err.Error(), fakes[2].URL()+" standby") {
		t.Fatalf("no active node: %q, %v, preferred %s", got, err, c.Preferred())
	}

	fakes[2].SetStandby(false)
	if got, err := c.PreferActive(ctx); err != nil || got != fakes[2].URL() || c.Preferred() != got {
		t.Fatalf("one active node: %q, %v, preferred %s; want %s", got, err, c.Preferred(), fakes[2].URL())
	}

	// Two nodes that say they are active (a split brain, or a
	// misconfiguration listing two clusters): keep what was chosen.
	fakes[1].Unseal()
	fakes[1].SetStandby(false)
	if got, err := c.PreferActive(ctx); err == nil || got != "" || c.Preferred() != fakes[2].URL() ||
		!strings.Contains(err.Error(), "two vault nodes say they are active") {
		t.Fatalf("two active nodes: %q, %v, preferred %s", got, err, c.Preferred())
	}
}

func TestRoleOf(t *testing.T) {
	for code, want := range map[int]Role{200: RoleActive, 429: RoleStandby, 503: RoleSealed, 501: RoleUninitialized, 473: RoleUnknown, 500: RoleUnknown} {
		if got := RoleOf(code); got != want {
			t.Errorf("RoleOf(%d) = %s, want %s", code, got, want)
		}
	}
}
