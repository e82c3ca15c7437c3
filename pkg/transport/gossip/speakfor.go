package gossip

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// No member may speak for another. memberlist itself believes any member
// about any other: an alive message about X relayed by Y replaces X's
// metadata (its share-service address, its generation), and a suspect or
// dead message about X with an incarnation near 2^32-1 leaves X no
// incarnation to refute it with. The transport therefore vets every
// message about a member, against the authenticated sender of the packet
// or stream that carries it:
//
//   - alive (and a push/pull entry in the alive or suspect state) about X is
//     accepted only from X itself, on a connection whose certificate is X.
//     The highest incarnation X announced that way is remembered.
//   - suspect and dead about X are accepted from anyone (liveness is
//     everyone's business), but only with an incarnation no higher than
//     the one X itself announced, so X's refutation, one higher, always
//     wins. About this node the bound is selfCap (2^31), so that a node
//     that restarted (at incarnation 1) hears of its former life and
//     refutes it, while no accusation can push it near 2^32.
//   - a graceful leave of X (dead with From == X) only from X itself; a
//     push/pull entry saying X left, from anyone else, counts as "dead".
//
// A member learns of the others by asking them: an alive message about X
// from a third party is dropped, and if X is new (or has news) to this
// node, hint(X's name, X's address) asks the Cluster to push/pull with X
// directly (rate-limited per address).
// The Cluster does so when the relayed incarnation is newer than what X
// told this node, or when this node does not list X as alive.

// selfSlack is how far above the incarnation this node last sent a
// suspicion of it may name: memberlist may have moved its incarnation by
// an update or refutation that is queued but not yet sent.
const selfSlack = 2

// selfCap is the highest incarnation an accusation of this node may name
// even above what it sent: a node that restarts starts again at 1, while
// the others still hold the incarnation of its former life, and it must
// hear of it to refute it (memberlist refutes with one more). Honest
// incarnations grow by one per update or refutation and never come near
// it; a forged one is held below half the range, so this node's
// refutation always has room to win (a further accusation at or below the
// cap moves it by one, as any suspicion does).
const selfCap = 1 << 31

// maxAnnounced bounds the members remembered; beyond it the table is
// cleared, which at worst drops suspicions until members speak again.
const maxAnnounced = 4096

// announcements remembers, per member, the highest incarnation the member
// announced about itself to this node.
type announcements struct {
	mu   sync.Mutex
	self string
	inc  map[string]uint32
}

func newAnnouncements(self string) *announcements {
	return &announcements{self: self, inc: map[string]uint32{}}
}

func (a *announcements) note(node string, inc uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.inc) >= maxAnnounced {
		clear(a.inc)
	}
	if cur, ok := a.inc[node]; !ok || inc > cur {
		a.inc[node] = inc
	}
}

// bound returns the highest incarnation an accusation of node may carry,
// and false if node never announced itself to this node.
func (a *announcements) bound(node string) (uint32, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inc, ok := a.inc[node]
	if node == a.self {
		// This node is known to itself even before it has sent anything.
		return max(inc+selfSlack, selfCap), true
	}
	return inc, ok
}

// fresh reports whether an alive message about node at inc would tell this
// node something new (node unknown, or a higher incarnation).
func (a *announcements) fresh(node string, inc uint32) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.inc[node]
	return !ok || inc > cur
}

// verdict is what the transport does with one message about a member.
type verdict int

const (
	pass verdict = iota // hand it to memberlist
	drop                // leave it out; the rest of the packet goes on
)

// judgeAlive: only the member itself may say it is alive.
func (t *Transport) judgeAlive(peer, node string, inc uint32, addr []byte, port uint16) verdict {
	if node == peer {
		t.said.note(node, inc)
		return pass
	}
	if node != t.said.self && t.cfg.OnHint != nil {
		t.cfg.OnHint(node, nodeAddr(&memberlist.Node{Addr: addr, Port: port}), t.said.fresh(node, inc))
	}
	// Not logged: every push/pull carries the others' entries.
	return drop
}

// judgeAccusation: anyone may suspect a member or report it dead, within
// the incarnation the member itself announced. leave is a dead message
// with From == Node, which only the member itself may send.
func (t *Transport) judgeAccusation(peer, node string, inc uint32, leave bool) verdict {
	if leave && node != peer {
		t.log.Debug("gossip: dropped a leave announced on another member's behalf", "peer", peer, "about", node)
		return drop
	}
	if node == peer {
		return pass
	}
	max, ok := t.said.bound(node)
	if !ok || inc > max {
		t.log.Debug("gossip: dropped an accusation beyond the member's own incarnation",
			"peer", peer, "about", node, "incarnation", inc, "announced", max, "known", ok)
		return drop
	}
	return pass
}
