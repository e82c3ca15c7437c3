package gossip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// holdFor fails the test as soon as cond returns an error, and otherwise
// returns after d: it checks that something never happens during d.
func holdFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// startImpostor runs memberlist with this package's transport but none of
// its delegates, under any node name: what an attacker holding a valid
// certificate could run. It joins seed and returns the memberlist.
func startImpostor(t *testing.T, ca *devpki.CA, name string, leaf *devpki.Leaf, ip net.IP, seed string) *memberlist.Memberlist {
	t.Helper()
	server, client := tlsPair(ca, leaf)
	tr, err := NewTransport(TransportConfig{
		BindAddr:    net.JoinHostPort(ip.String(), "0"),
		ServerTLS:   server,
		ClientTLS:   client,
		TrustDomain: spiffeid.RequireTrustDomainFromString(ca.TrustDomain),
		Roles:       identity.Roles,
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	LoopbackTuning().apply(mc)
	mc.Name, mc.Transport, mc.EnableCompression = name, tr, false
	mc.Logger = memberlistLogger(testLogger(t))
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{seed}); err != nil {
		t.Logf("impostor join: %v", err)
	}
	return ml
}

// neverListed checks that no honest member lists name.
func neverListed(cs []*Cluster, name string) func() error {
	return func() error {
		for _, c := range cs {
			if s := stateOf(c, name); s != 0 {
				return fmt.Errorf("%s lists %s as %v", c.Name(), name, s)
			}
		}
		return nil
	}
}

func TestImpostorsNeverAdmitted(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 60, 3)
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })
	seed := cs[0].AdvertiseAddr()
	// Long enough for gossip retransmits and a push/pull round.
	window := LoopbackTuning().PushPullInterval + time.Second

	type tc struct {
		name  string
		start func(t *testing.T, ip net.IP)
		// never must keep returning nil while the impostor tries.
		never func() error
		// tlsRefused cases cannot get past the handshake, so a short watch
		// suffices.
		tlsRefused bool
	}
	// impostor starts one. When the transport admits its certificate, it
	// waits until the impostor has talked to the cluster (the impostor, with
	// no delegates, lists the honest members); otherwise it checks that the
	// impostor learns nothing.
	impostor := func(name, certID string, tlsAdmitted bool) func(t *testing.T, ip net.IP) {
		return func(t *testing.T, ip net.IP) {
			ml := startImpostor(t, ca, name, issue(t, ca, certID, ip), ip, seed)
			if !tlsAdmitted {
				if n := ml.NumMembers(); n != 1 {
					t.Errorf("refused impostor learned %d members", n)
				}
				return
			}
			proctest.WaitForErr(t, 10*time.Second, "the impostor to learn the cluster", func() error {
				if n := ml.NumMembers(); n < 2 {
					return fmt.Errorf("impostor knows %d members", n)
				}
				return nil
			})
		}
	}
	stolen := cs[1]
	tests := []tc{
		{"fail/name differs from certificate",
			impostor(ca.ID("holder", "ghost"), ca.ID("holder", "mallory"), true),
			neverListed(cs, ca.ID("holder", "ghost")), false},
		{"fail/name of another member",
			impostor(stolen.Name(), ca.ID("holder", "mallory"), true),
			func() error {
				for _, c := range cs {
					for _, m := range c.Members() {
						if m.Name == stolen.Name() && (m.Addr != stolen.AdvertiseAddr() || m.State != StateAlive) {
							return fmt.Errorf("%s lists %s at %s as %v", c.Name(), m.Name, m.Addr, m.State)
						}
					}
				}
				return nil
			}, false},
		{"fail/role not admitted",
			impostor(ca.ID("operator", "olive"), ca.ID("operator", "olive"), false),
			neverListed(cs, ca.ID("operator", "olive")), true},
		{"fail/wrong trust domain, same CA", func(t *testing.T, ip net.IP) {
			id := "spiffe://other.test/holder/wtd"
			cfg := testConfig(t, ca, node{name: "holder/wtd", ip: int(ip[3])})
			cfg.Name = id
			cfg.ServerTLS, cfg.ClientTLS = tlsPair(ca, issue(t, ca, id, ip))
			cfg.BindAddr = net.JoinHostPort(ip.String(), "0")
			c := start(t, cfg)
			if _, err := c.Join([]string{seed}); err == nil {
				t.Error("join from another trust domain succeeded")
			}
		}, neverListed(cs, "spiffe://other.test/holder/wtd"), true},
		{"fail/other CA", func(t *testing.T, ip net.IP) {
			evil := newCA(t, testTrustDomain)
			cfg := testConfig(t, evil, node{name: "holder/evil", ip: int(ip[3])})
			c := start(t, cfg)
			if _, err := c.Join([]string{seed}); err == nil {
				t.Error("join with a certificate from another CA succeeded")
			}
		}, neverListed(cs, "spiffe://keyshare.test/holder/evil"), true},
	}
	run := func(t *testing.T, i int, tc tc) {
		tc.start(t, hostIP(70+i))
		w := window
		if tc.tlsRefused {
			w = time.Second
		}
		holdFor(t, w, "impostor admitted", tc.never)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, i, tc) })
	}
	if err := converged(cs); err != nil {
		t.Errorf("honest members disturbed: %v", err)
	}
}
