package gossip

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// Members of the forgery tests on 127.0.0.221-223, the forger (a valid
// holder certificate, not a member) on .226.

// forgedAlive mirrors memberlist's alive message.
type forgedAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

type forgedAccusation struct {
	Incarnation uint32
	Node        string
	From        string
}

func encodeMsg(t *testing.T, kind byte, v ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(kind)
	enc := codec.NewEncoder(&buf, &codec.MsgpackHandle{})
	for _, x := range v {
		if err := enc.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// forger is a transport with a valid holder certificate that sends
// hand-made gossip: what a leaked holder or unsealer credential allows.
type forger struct {
	t  *testing.T
	tr *Transport
}

func newForger(t *testing.T, ca *devpki.CA, ip net.IP) *forger {
	leaf := issue(t, ca, ca.ID("holder", "mallory"), ip)
	server, client := tlsPair(ca, leaf)
	tr, err := NewTransport(TransportConfig{
		BindAddr: net.JoinHostPort(ip.String(), "0"), ServerTLS: server, ClientTLS: client,
		TrustDomain: spiffeid.RequireTrustDomainFromString(ca.TrustDomain), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return &forger{t: t, tr: tr}
}

// send writes one packet to each of to, a few times over (packets are
// best effort).
func (f *forger) send(msg []byte, to ...*Cluster) {
	for range 3 {
		for _, c := range to {
			if _, err := f.tr.WriteToAddress(msg, memberlist.Address{Addr: c.AdvertiseAddr(), Name: c.Name()}); err != nil {
				f.t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pushPull sends a push/pull state of entries to c over a stream and reads
// c's answer.
func (f *forger) pushPull(c *Cluster, entries ...pushNodeState) {
	conn, err := f.tr.DialAddressTimeout(memberlist.Address{Addr: c.AdvertiseAddr(), Name: c.Name()}, 5*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	vals := []any{&pushPullHeader{Nodes: len(entries)}}
	for i := range entries {
		vals = append(vals, &entries[i])
	}
	if _, err := conn.Write(encodeMsg(f.t, msgPushPull, vals...)); err != nil {
		f.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Read(make([]byte, 4096)) // c's own state, once it has merged ours
}

func addrPort(t *testing.T, c *Cluster) ([]byte, uint16) {
	ap := netip.MustParseAddrPort(c.AdvertiseAddr())
	return ap.Addr().AsSlice(), ap.Port()
}

func memberOf(c *Cluster, name string) (Member, bool) {
	for _, m := range c.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// TestNoMemberSpeaksForAnother: a member holding a valid certificate
// forges, about holder h2, an alive message with another share-service
// address and an incarnation near 2^32, suspicions and a death at 2^32-1,
// a leave, and a push/pull carrying the same lies; sent to h1, h3 and h2
// itself. No honest member takes h2's address, generation or liveness from
// it, and h2's own update afterwards reaches everyone: its refutation
// still wins. Before the fix, h1 and h3 took the forged address at once,
// and h2's later updates were ignored (incarnation out of reach).
func TestNoMemberSpeaksForAnother(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, 220, 3)
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })
	h1, h2, h3 := cs[0], cs[1], cs[2]
	m := newForger(t, ca, hostIP(226))
	mallory := ca.ID("holder", "mallory")
	victim := h2.Name()
	realRPC := net.JoinHostPort(hostIP(222).String(), "8443")
	addr, port := addrPort(t, h2)
	evil, err := EncodeMeta(Meta{Role: "holder", RPCAddr: "127.0.0.226:8443", Generation: 99, Version: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	const top = 1<<32 - 1
	vsn := []uint8{1, 5, 2, 0, 0, 0}

	honest := func() error {
		for _, c := range []*Cluster{h1, h3} {
			// Every change is an event, however soon it is undone.
			for drained := false; !drained; {
				select {
				case e := <-c.Events():
					if e.Member.Name != victim {
						continue
					}
					if e.Type != EventUpdate && e.Type != EventJoin || e.Member.Meta.RPCAddr != realRPC || e.Member.Meta.Generation == 99 {
						return fmt.Errorf("%s had event %v for %s: %+v", c.Name(), e.Type, victim, e.Member.Meta)
					}
				default:
					drained = true
				}
			}
			mb, ok := memberOf(c, victim)
			switch {
			case !ok:
				return fmt.Errorf("%s no longer lists %s", c.Name(), victim)
			case mb.State != StateAlive:
				return fmt.Errorf("%s sees %s as %v", c.Name(), victim, mb.State)
			case mb.Meta.RPCAddr != realRPC || mb.Meta.Generation == 99:
				return fmt.Errorf("%s took forged metadata for %s: %+v", c.Name(), victim, mb.Meta)
			}
		}
		return nil
	}

	// Forged alive messages, in packets and in a compound with a genuine
	// ping of the forger's own.
	m.send(encodeMsg(t, msgAlive, &forgedAlive{Incarnation: top - 1, Node: victim, Addr: addr, Port: port, Meta: evil, Vsn: vsn}), h1, h3)
	m.send(joinCompound([][]byte{
		encodeMsg(t, msgAlive, &forgedAlive{Incarnation: top - 2, Node: victim, Addr: addr, Port: port, Meta: evil, Vsn: vsn}),
	}), h1, h3)
	holdFor(t, time.Second, "after forged alive packets", honest)

	// The same lie in a push/pull, and "h2 left" from someone else.
	for _, c := range []*Cluster{h1, h3} {
		m.pushPull(c, pushNodeState{Name: victim, Addr: addr, Port: port, Meta: evil, Incarnation: top - 3, State: memberlist.StateAlive, Vsn: vsn},
			pushNodeState{Name: h1.Name(), Addr: addr, Port: port, Meta: evil, Incarnation: top - 3, State: memberlist.StateLeft, Vsn: vsn})
	}
	holdFor(t, time.Second, "after a forged push/pull", honest)

	// Accusations out of h2's reach, and a leave on its behalf, to the
	// others and to h2 itself.
	m.send(encodeMsg(t, msgSuspect, &forgedAccusation{Incarnation: top, Node: victim, From: mallory}), h1, h2, h3)
	m.send(encodeMsg(t, msgDead, &forgedAccusation{Incarnation: top, Node: victim, From: mallory}), h1, h2, h3)
	m.send(encodeMsg(t, msgDead, &forgedAccusation{Incarnation: top, Node: victim, From: victim}), h1, h3)
	// Tuning: suspicion times out in a few probe intervals; hold past it.
	holdFor(t, 4*time.Second, "after forged accusations", honest)

	// h2 speaks for itself: every member takes its update.
	if err := h2.UpdateMeta(Meta{RPCAddr: realRPC, Generation: 7, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitForErr(t, 15*time.Second, "h2's own update to reach h1 and h3", func() error {
		for _, c := range []*Cluster{h1, h3} {
			if mb, _ := memberOf(c, victim); mb.Meta.Generation != 7 || mb.State != StateAlive {
				return fmt.Errorf("%s sees %s at generation %d, %v", c.Name(), victim, mb.Meta.Generation, mb.State)
			}
		}
		return nil
	})
	if err := converged(cs); err != nil {
		t.Fatal(err)
	}
}
