package gossip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// TestPartitionedMemberRejoins isolates a member for longer than
// GossipToTheDeadTime, until every side has forgotten the other, then heals
// the network: only the periodic seed re-join can bring it back
// (hashicorp/memberlist#222).
func TestPartitionedMemberRejoins(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	sim := newNetsim(t)
	tu := LoopbackTuning()

	// Each host 127.0.0.(40+i) listens directly and is reached through its
	// proxy on 127.0.0.(50+i). The certificate covers both addresses.
	const hosts = 5
	var cs []*Cluster
	var seed string
	for i := 1; i <= hosts; i++ {
		ip, proxyIP := hostIP(40+i), hostIP(50+i)
		// Reserve the real listener first, so the proxy knows its target.
		probe, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		target := probe.Addr().String()
		_ = probe.Close()
		adv := sim.proxy(t, proxyIP, ip, target)
		cfg := testConfig(t, ca, node{name: fmt.Sprintf("holder/p%d", i), ip: 40 + i, certIPs: []net.IP{proxyIP}})
		cfg.BindAddr, cfg.AdvertiseAddr = target, adv
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		cs = append(cs, start(t, cfg))
		if seed == "" {
			seed = adv
		}
	}
	proctest.WaitForErr(t, 20*time.Second, "5 members to converge", func() error { return converged(cs) })

	lonely, others := cs[hosts-1], cs[:hosts-1]
	sim.isolate(hostIP(40 + hosts))
	took := proctest.WaitForErr(t, 30*time.Second, "the others to declare the isolated member dead", func() error {
		for _, c := range others {
			if s := stateOf(c, lonely.Name()); s == StateAlive {
				return fmt.Errorf("%s still sees %s alive", c.Name(), lonely.Name())
			}
		}
		for _, c := range others {
			if s := stateOf(lonely, c.Name()); s == StateAlive {
				return fmt.Errorf("isolated %s still sees %s alive", lonely.Name(), c.Name())
			}
		}
		return nil
	})
	// Stay cut off until both sides have reaped each other: past
	// GossipToTheDeadTime plus a few probe rounds, which is when memberlist
	// stops gossiping about the dead and forgets them.
	t.Logf("isolated member declared dead on both sides in %s", took)
	deadSince := time.Now()
	forgetAfter := tu.GossipToTheDeadTime + 3*hosts*tu.ProbeInterval
	proctest.WaitForErr(t, forgetAfter+20*time.Second, "both sides to forget each other", func() error {
		if time.Since(deadSince) < forgetAfter {
			return fmt.Errorf("isolated for %s of %s", time.Since(deadSince).Round(time.Millisecond), forgetAfter)
		}
		for _, c := range others {
			if s := stateOf(c, lonely.Name()); s != 0 {
				return fmt.Errorf("%s still lists %s as %v", c.Name(), lonely.Name(), s)
			}
		}
		return nil
	})
	sim.heal(hostIP(40 + hosts))
	took = proctest.WaitForErr(t, 30*time.Second, "the isolated member to rejoin", func() error { return converged(cs) })
	t.Logf("isolated member back in everyone's view %s after healing", took)
}
