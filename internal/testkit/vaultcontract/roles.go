package vaultcontract

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// Cluster is three or more unsealed nodes of one HA cluster.
type Cluster struct {
	// Active is the active node's API address, Standbys the others'.
	Active   string
	Standbys []string
	// HTTP is a client that trusts the nodes' certificates.
	HTTP *http.Client
	// Seal seals the node at addr (given a standby) and returns once it is.
	Seal func(ctx context.Context, addr string) error
}

// RunRoles asserts what sys/health tells an unauthenticated client about
// each node of a cluster, the codes transit.RoleOf reads to send calls to
// the active node rather than through a standby: 200 from the active node,
// 429 from an unsealed standby, 503 from a sealed node. It leaves the first
// standby sealed.
func RunRoles(t *testing.T, ctx context.Context, c Cluster) {
	t.Helper()
	want := map[string]int{c.Active: http.StatusOK}
	for _, s := range c.Standbys {
		want[s] = http.StatusTooManyRequests
	}
	checkHealth(t, ctx, c.HTTP, want)
	if err := c.Seal(ctx, c.Standbys[0]); err != nil {
		t.Fatalf("seal standby %s: %v", c.Standbys[0], err)
	}
	want[c.Standbys[0]] = http.StatusServiceUnavailable
	checkHealth(t, ctx, c.HTTP, want)
}

func checkHealth(t *testing.T, ctx context.Context, hc *http.Client, want map[string]int) {
	t.Helper()
	for addr, code := range want {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(addr, "/")+"/v1/sys/health", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("sys/health of %s: %v", addr, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("sys/health of %s: HTTP %d, want %d", addr, resp.StatusCode, code)
		}
	}
}
