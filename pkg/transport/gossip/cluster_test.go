package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

func TestConverge(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 30, 5)
	took := proctest.WaitForErr(t, 20*time.Second, "5 members to converge", func() error { return converged(cs) })
	t.Logf("5 members converged in %s", took)
	for _, m := range cs[4].Members() {
		if m.Meta.Role != "holder" || m.Meta.Version != "test" {
			t.Errorf("member %s has meta %+v, want role holder and version test", m.Name, m.Meta)
		}
	}
}

func TestKilledMemberFails(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 30, 5)
	proctest.WaitForErr(t, 20*time.Second, "5 members to converge", func() error { return converged(cs) })

	victim := cs[4]
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Detection takes up to a probe round (each survivor probes one member per
	// ProbeInterval, slowed by up to 2x when the machine is loaded), the probe
	// timeout, and the suspicion timeout (at most SuspicionMaxTimeoutMult *
	// SuspicionMult * ProbeInterval for 5 nodes), plus slack for a loaded
	// two-core CI machine.
	tu := LoopbackTuning()
	suspicionMax := time.Duration(tu.SuspicionMaxTimeoutMult*tu.SuspicionMult) * tu.ProbeInterval
	bound := 2*5*tu.ProbeInterval + tu.ProbeTimeout + suspicionMax + 3*time.Second
	took := proctest.WaitForErr(t, bound, "survivors to declare the killed member dead", func() error {
		for _, c := range cs[:4] {
			if s := stateOf(c, victim.Name()); s != StateDead && s != 0 {
				return fmt.Errorf("%s sees %s as %v", c.Name(), victim.Name(), s)
			}
		}
		return nil
	})
	t.Logf("killed member declared dead by all survivors in %s (bound %s)", took, bound)
	if err := converged(cs[:4]); err != nil {
		t.Errorf("survivors disagree after the failure: %v", err)
	}
}

func TestFailedEvent(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 30, 3)
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })

	leaver, killed := cs[1], cs[2]
	if err := leaver.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := leaver.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := killed.Shutdown(); err != nil {
		t.Fatal(err)
	}
	want := map[string]EventType{leaver.Name(): EventLeave, killed.Name(): EventFailed}
	timeout := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-cs[0].Events():
			if w, ok := want[ev.Member.Name]; ok && ev.Type == w {
				delete(want, ev.Member.Name)
				if wantState := map[EventType]State{EventLeave: StateLeft, EventFailed: StateDead}[w]; ev.Member.State != wantState {
					t.Errorf("%s event for %s carries state %v, want %v", w, ev.Member.Name, ev.Member.State, wantState)
				}
			}
		case <-timeout:
			t.Fatalf("missing events: %v", want)
		}
	}
}
