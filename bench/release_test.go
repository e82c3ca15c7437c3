//go:build costs

package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/rig"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc"
)

// Addresses of the release rig: fake Vault on .226, holders on .227-229,
// the coordinator dialing from .230.
var rigAddrs = rig.Addrs{Vault: "127.0.0.226", Holders: [3]string{"127.0.0.227", "127.0.0.228", "127.0.0.229"}, Source: "127.0.0.230"}

// percentiles returns p50, p90, p99 and the maximum of ds.
func percentiles(ds []time.Duration) (p50, p90, p99, top time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.90), at(0.99), s[len(s)-1]
}

func fmtPct(ds []time.Duration) string {
	p50, p90, p99, top := percentiles(ds)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("p50 %s / p90 %s / p99 %s ms (max %s)", ms(p50), ms(p90), ms(p99), ms(top))
}

// TestReleaseLatency times 1000 Releases, in turn from each holder, over
// open mutual-TLS connections: the holder's own seal-status check of the
// fake Vault, the policy decision, opening the sealed file and the fsynced
// audit entry included. Then 200 whole unseals, from the poll that sees the
// node sealed to its confirmed unseal.
func TestReleaseLatency(t *testing.T) {
	const releases, unseals = 1000, 200
	r := rig.New(t, rigAddrs)
	ctx := context.Background()
	var clients []*sharerpc.Client
	for _, id := range r.IDs {
		c, err := r.Holders.Client(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Release(ctx, "vault-1", 1); err != nil { // connect
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	ds := make([]time.Duration, 0, releases)
	for i := range releases {
		start := time.Now()
		ss, err := clients[i%len(clients)].Release(ctx, "vault-1", 1)
		ds = append(ds, time.Since(start))
		if err != nil || len(ss) == 0 {
			t.Fatalf("release %d: %d shares, %v", i, len(ss), err)
		}
	}
	t.Logf("Release: %s over %d", fmtPct(ds), releases)
	record("Release latency (one holder)", fmtPct(ds), "", fmt.Sprintf("%d Releases round-robin over 3 in-process holders, open mTLS connections, audit fsync", releases))

	c := r.Coordinator(t)
	if ok, _, err := c.UnsealOnce(ctx, "vault-1"); err != nil || !ok {
		t.Fatalf("first unseal: %v %v", ok, err)
	}
	us := make([]time.Duration, 0, unseals)
	for i := range unseals {
		r.Fake.Seal()
		ok, took, err := c.UnsealOnce(ctx, "vault-1")
		if err != nil || !ok {
			t.Fatalf("unseal %d: %v %v", i, ok, err)
		}
		us = append(us, took)
	}
	if w := r.Fake.Stats().Wasted; w != 0 {
		t.Fatalf("%d unseal attempts wasted", w)
	}
	t.Logf("sealed to unsealed: %s over %d", fmtPct(us), unseals)
	record("sealed to unsealed (coordinator)", fmtPct(us), "", fmt.Sprintf("%d unseals of the fake Vault: manifests, 2-3 Releases, 3 submissions, confirming status", unseals))
}
