package gossip

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

const (
	sfSelf  = "spiffe://keyshare.test/holder/self"
	sfPeer  = "spiffe://keyshare.test/holder/peer"
	sfOther = "spiffe://keyshare.test/holder/other"
)

func bareTransport() (*Transport, *[]string) {
	var hints []string
	t := &Transport{said: newAnnouncements(sfSelf), warns: newWarnLimiter(), log: discardLogger()}
	t.cfg.OnHint = func(node, _ string, _ bool) { hints = append(hints, node) }
	return t, &hints
}

// TestSpeakForRules: one message about a member, from peer, and whether
// the transport hands it to memberlist. other announced incarnation 5 and
// this node last sent incarnation 3 about itself.
func TestSpeakForRules(t *testing.T) {
	type tc struct {
		name string
		msg  func(t *testing.T) []byte
		keep bool
	}
	alive := func(node string, inc uint32) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return encodeMsg(t, msgAlive, &forgedAlive{Incarnation: inc, Node: node, Addr: []byte{127, 0, 0, 1}, Port: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}})
		}
	}
	acc := func(kind byte, node, from string, inc uint32) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return encodeMsg(t, kind, &forgedAccusation{Incarnation: inc, Node: node, From: from})
		}
	}
	for _, c := range []tc{
		{name: "ok/alive about the peer itself", msg: alive(sfPeer, 9), keep: true},
		{name: "fail/alive about another member", msg: alive(sfOther, 6)},
		{name: "fail/alive about this node", msg: alive(sfSelf, 1<<31)},
		{name: "ok/suspect within the member's incarnation", msg: acc(msgSuspect, sfOther, sfPeer, 5), keep: true},
		{name: "fail/suspect above the member's incarnation", msg: acc(msgSuspect, sfOther, sfPeer, 6)},
		{name: "fail/suspect of a member never heard from", msg: acc(msgSuspect, "spiffe://keyshare.test/holder/nobody", sfPeer, 0)},
		{name: "ok/suspect of this node within reach", msg: acc(msgSuspect, sfSelf, sfPeer, 3+selfSlack), keep: true},
		{name: "ok/dead report of this node's former life (before a restart)", msg: acc(msgDead, sfSelf, sfPeer, 1000), keep: true},
		{name: "ok/suspect of this node at the cap", msg: acc(msgSuspect, sfSelf, sfPeer, selfCap), keep: true},
		{name: "fail/suspect of this node above the cap", msg: acc(msgSuspect, sfSelf, sfPeer, selfCap+1)},
		{name: "fail/suspect of this node out of reach", msg: acc(msgSuspect, sfSelf, sfPeer, 1<<32-1)},
		{name: "ok/dead report within the incarnation", msg: acc(msgDead, sfOther, sfPeer, 5), keep: true},
		{name: "fail/dead report at 2^32-1", msg: acc(msgDead, sfOther, sfPeer, 1<<32-1)},
		{name: "ok/leave of the peer itself", msg: acc(msgDead, sfPeer, sfPeer, 9), keep: true},
		{name: "fail/leave on another member's behalf", msg: acc(msgDead, sfOther, sfOther, 5)},
		{name: "fail/leave on this node's behalf", msg: acc(msgDead, sfSelf, sfSelf, 3)},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, _ := bareTransport()
			tr.said.note(sfOther, 5)
			tr.noteOutgoing(encodeMsg(t, msgAlive, &forgedAlive{Incarnation: 3, Node: sfSelf}), 0)
			msg := c.msg(t)
			for _, packet := range [][]byte{msg, joinCompound([][]byte{msg, encodePing(t, sfPeer)})} {
				out, err := tr.filterPacket(packet, sfPeer)
				if err != nil {
					t.Fatal(err)
				}
				kept := out != nil && bytes.Contains(out, msg)
				if kept != c.keep {
					t.Fatalf("kept = %v, want %v", kept, c.keep)
				}
			}
		})
	}
}

// TestPushPullVetted: a push/pull keeps the sender's own entry and bounded
// accusations, drops alive entries about others (asking them directly
// instead), and turns a third party's "left" into "dead".
func TestPushPullVetted(t *testing.T) {
	tr, hints := bareTransport()
	tr.said.note(sfOther, 5)
	in := []pushNodeState{
		{Name: sfPeer, Incarnation: 2, State: memberlist.StateAlive, Meta: []byte(`{"a":"peer"}`)},
		{Name: sfOther, Incarnation: 1 << 30, State: memberlist.StateAlive, Meta: []byte(`{"a":"evil"}`)},
		{Name: sfOther, Incarnation: 5, State: memberlist.StateLeft},
		{Name: sfOther, Incarnation: 1<<32 - 1, State: memberlist.StateSuspect},
	}
	vals := []any{&pushPullHeader{Nodes: len(in), UserStateLen: 3}}
	for i := range in {
		vals = append(vals, &in[i])
	}
	raw := append(encodeMsg(t, msgPushPull, vals...), 'a', 'b', 'c', 'z')
	out, err := tr.vetStream(bufio.NewReader(bytes.NewReader(raw)), sfPeer)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != msgPushPull {
		t.Fatalf("type %d", out[0])
	}
	dec := codec.NewDecoder(bytes.NewReader(out[1:]), &codec.MsgpackHandle{})
	var h pushPullHeader
	if err := dec.Decode(&h); err != nil || h.Nodes != 2 || h.UserStateLen != 3 {
		t.Fatalf("header %+v, %v; want 2 nodes, 3 bytes of user state", h, err)
	}
	var got []pushNodeState
	for range h.Nodes {
		var st pushNodeState
		if err := dec.Decode(&st); err != nil {
			t.Fatal(err)
		}
		got = append(got, st)
	}
	if got[0].Name != sfPeer || got[1].Name != sfOther || got[1].State != memberlist.StateDead || got[1].Incarnation != 5 {
		t.Fatalf("kept %+v", got)
	}
	if !bytes.HasSuffix(out, []byte("abc")) {
		t.Fatal("user state lost")
	}
	if len(*hints) != 1 || (*hints)[0] != sfOther {
		t.Fatalf("hints %v, want one for %s", *hints, sfOther)
	}
	// A ping over a stream must name the peer.
	if _, err := tr.vetStream(bufio.NewReader(bytes.NewReader(encodePing(t, sfOther))), sfPeer); err == nil {
		t.Fatal("a stream ping naming another member passed")
	}
}
