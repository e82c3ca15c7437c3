package gossip

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/hashicorp/memberlist"
)

// admission is the memberlist Alive and Merge delegate. A node is admitted
// only if its name is an allowed SPIFFE ID, its metadata's role matches that
// ID, and dialing its advertised address showed a certificate with exactly
// that ID. Whoever relayed the news does not matter.
type admission struct {
	t        *Transport
	self     string
	selfAddr string
}

var (
	_ memberlist.AliveDelegate = (*admission)(nil)
	_ memberlist.MergeDelegate = (*admission)(nil)
)

func nodeAddr(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// NotifyAlive implements memberlist.AliveDelegate. It runs under
// memberlist's node lock, so it never dials: an address not seen yet is
// probed in the background and the node is admitted by a later alive
// message (gossip retransmits them, and push/pull repeats them).
func (a *admission) NotifyAlive(n *memberlist.Node) error {
	addr := nodeAddr(n)
	if err := a.static(n, addr); err != nil {
		return err
	}
	if n.Name == a.self {
		return nil
	}
	seen, ok := a.t.book.lookup(addr)
	if !ok {
		a.t.probeAsync(addr)
		return fmt.Errorf("node %s at %s is not verified yet: no certificate observed at that address", n.Name, addr)
	}
	if seen != n.Name {
		a.t.probeAsync(addr)
		return fmt.Errorf("node %s at %s refused: the certificate at that address is %s", n.Name, addr, seen)
	}
	return nil
}

// static runs the checks that need no network.
func (a *admission) static(n *memberlist.Node, addr string) error {
	if n.Name == a.self {
		if addr != a.selfAddr {
			return fmt.Errorf("node at %s claims this node's name %s", addr, n.Name)
		}
		return nil
	}
	id, role, err := parseMemberID(n.Name)
	if err != nil {
		return fmt.Errorf("node at %s refused: %w", addr, err)
	}
	if err := a.t.policy.check(id); err != nil {
		return fmt.Errorf("node at %s refused: %w", addr, err)
	}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("node %s at %s refused: %w", n.Name, addr, err)
	}
	if meta.Role != "" && meta.Role != role {
		return fmt.Errorf("node %s at %s refused: metadata role %q differs from its ID's role %q", n.Name, addr, meta.Role, role)
	}
	return nil
}

// NotifyMerge implements memberlist.MergeDelegate; memberlist calls it for
// joins, outside its locks. It first probes every live node at an address
// not seen yet, so that a join converges in one push/pull, then refuses the
// whole merge if any live node's name differs from the certificate at its
// address: an honest peer would never have admitted such a node.
func (a *admission) NotifyMerge(peers []*memberlist.Node) error {
	var unknown []string
	for _, n := range peers {
		if n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect || n.Name == a.self {
			continue
		}
		if _, ok := a.t.book.lookup(nodeAddr(n)); !ok {
			unknown = append(unknown, nodeAddr(n))
		}
	}
	a.t.probeAll(unknown)
	for _, n := range peers {
		if n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect {
			continue
		}
		addr := nodeAddr(n)
		if err := a.static(n, addr); err != nil {
			return fmt.Errorf("refusing merge: %w", err)
		}
		if seen, ok := a.t.book.lookup(addr); ok && n.Name != a.self && seen != n.Name {
			return fmt.Errorf("refusing merge: node %s at %s does not match the certificate at that address, %s", n.Name, addr, seen)
		}
	}
	return nil
}

// metaDelegate serves this node's encoded metadata to memberlist. The
// other memberlist.Delegate hooks are unused.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte
}

var _ memberlist.Delegate = (*metaDelegate)(nil)

func (d *metaDelegate) set(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta = b
}

// NodeMeta implements memberlist.Delegate.
func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		// EncodeMeta enforces MetaMaxSize; a smaller limit is never asked.
		return nil
	}
	return d.meta
}

// NotifyMsg implements memberlist.Delegate.
func (d *metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *metaDelegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *metaDelegate) MergeRemoteState([]byte, bool) {}
