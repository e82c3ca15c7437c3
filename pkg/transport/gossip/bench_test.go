package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// BenchmarkConverge5 measures how long five fresh members, seeded with the
// first, take until every one lists all five alive, with LoopbackTuning.
// Certificates are issued outside the timed region.
func BenchmarkConverge5(b *testing.B) {
	ca := newCA(b, testTrustDomain)
	const n = 5
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfgs := make([]Config, n)
		for j := range cfgs {
			cfgs[j] = testConfig(b, ca, node{name: fmt.Sprintf("holder/b%d", j+1), ip: 100 + j})
			cfgs[j].Logger = nil
		}
		b.StartTimer()
		var cs []*Cluster
		for j, cfg := range cfgs {
			if j > 0 {
				cfg.Seeds = []string{cs[0].AdvertiseAddr()}
			}
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
		}
		proctest.WaitForErr(b, 30*time.Second, "convergence", func() error { return converged(cs) })
		b.StopTimer()
		for _, c := range cs {
			_ = c.Shutdown()
		}
		b.StartTimer()
	}
}
