package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// TestRestartedMemberComesBack: a member that restarts (same name, same
// address, incarnation 1 again) while the others still hold it dead at the
// incarnation of its former life hears of that life and refutes it, so
// the others list it alive again at once, not after they forget it
// (GossipToTheDeadTime, a minute here). Members on 127.0.0.236-238.
func TestRestartedMemberComesBack(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	tune := func(c *Config) {
		c.Tuning.GossipToTheDeadTime = time.Minute
	}
	var cs []*Cluster
	var cfgs []Config
	for i := 1; i <= 3; i++ {
		cfg := testConfig(t, ca, node{name: fmt.Sprintf("holder/r%d", i), ip: 235 + i})
		tune(&cfg)
		if len(cs) > 0 {
			cfg.Seeds = []string{cs[0].AdvertiseAddr()}
		}
		c := start(t, cfg)
		cfg.BindAddr = c.AdvertiseAddr() // the restart binds the same port
		cfgs = append(cfgs, cfg)
		cs = append(cs, c)
	}
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })
	// Move r3's incarnation up, as updates do over a life.
	for g := uint64(1); g <= 5; g++ {
		if err := cs[2].UpdateMeta(Meta{Generation: g, Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	proctest.WaitForErr(t, 10*time.Second, "r3's updates to spread", func() error {
		for _, c := range cs[:2] {
			if m, _ := memberOf(c, cs[2].Name()); m.Meta.Generation != 5 {
				return fmt.Errorf("%s sees r3 at generation %d", c.Name(), m.Meta.Generation)
			}
		}
		return nil
	})
	_ = cs[2].Shutdown()
	proctest.WaitForErr(t, 20*time.Second, "the others to declare r3 dead", func() error {
		for _, c := range cs[:2] {
			if s := stateOf(c, cs[2].Name()); s == StateAlive {
				return fmt.Errorf("%s still sees r3 alive", c.Name())
			}
		}
		return nil
	})
	cfg := cfgs[2]
	cfg.Meta.Generation = 6
	cs[2] = start(t, cfg)
	took := proctest.WaitForErr(t, 15*time.Second, "the restarted r3 to be listed alive by all", func() error { return converged(cs) })
	t.Logf("restarted member back in everyone's view after %s", took.Round(time.Millisecond))
}
