package gossip

import (
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's liveness as this node sees it.
type State int

// Member states. memberlist does not report its suspect state safely (its
// Members returns pointers into state it keeps mutating), so a suspect
// member is listed as alive until it is declared dead.
const (
	StateAlive State = iota + 1
	StateDead
	StateLeft
)

var stateNames = map[State]string{StateAlive: "alive", StateDead: "dead", StateLeft: "left"}

func (s State) String() string { return enumName(stateNames, s) }

// Member is one node of the cluster. Name is the SPIFFE ID that its
// certificate carries.
type Member struct {
	Name  string
	Addr  string
	State State
	Meta  Meta
}

// EventType says what happened to a member.
type EventType int

// Event types.
const (
	EventJoin   EventType = iota + 1 // a member became alive
	EventLeave                       // a member left gracefully
	EventFailed                      // a member was declared dead
	EventUpdate                      // a member's metadata changed
)

var eventNames = map[EventType]string{EventJoin: "join", EventLeave: "leave", EventFailed: "failed", EventUpdate: "update"}

func (e EventType) String() string { return enumName(eventNames, e) }

// enumName is v's name in names, or unknown(v).
func enumName[T ~int](names map[T]string, v T) string {
	if n, ok := names[v]; ok {
		return n
	}
	return "unknown(" + strconv.Itoa(int(v)) + ")"
}

// Event reports a membership change.
type Event struct {
	Type   EventType
	Member Member
}

// leaveNoticeTTL is how long a leave announcement explains a departure.
const leaveNoticeTTL = time.Minute

// view is the memberlist.EventDelegate that keeps this node's member list.
// memberlist calls it with its node lock held, so it never blocks: when the
// events channel is full, events are dropped and counted.
type view struct {
	mu      sync.Mutex
	members map[string]Member
	goneAt  map[string]time.Time
	leaving map[string]time.Time
	retain  time.Duration
	events  chan Event
	closed  bool
	dropped int
	log     *slog.Logger
}

var _ memberlist.EventDelegate = (*view)(nil)

func newView(buffer int, retain time.Duration, log *slog.Logger) *view {
	return &view{
		members: make(map[string]Member),
		goneAt:  make(map[string]time.Time),
		leaving: make(map[string]time.Time),
		retain:  retain,
		events:  make(chan Event, buffer),
		log:     log,
	}
}

func (v *view) member(n *memberlist.Node, state State) Member {
	m := Member{
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: state,
	}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		v.log.Warn("ignoring undecodable member metadata", "member", n.Name, "addr", m.Addr, "err", err)
	}
	m.Meta = meta
	return m
}

// NotifyJoin implements memberlist.EventDelegate.
func (v *view) NotifyJoin(n *memberlist.Node) { v.set(v.member(n, StateAlive), EventJoin) }

// NotifyUpdate implements memberlist.EventDelegate.
func (v *view) NotifyUpdate(n *memberlist.Node) { v.set(v.member(n, StateAlive), EventUpdate) }

// noteLeaving records that name announced its graceful departure. The
// memberlist.Node handed to NotifyLeave does not carry the state, so this is
// how a leave is told from a failure. A leave learned only through push/pull
// state exchange, having missed the announcement, is reported as a failure.
func (v *view) noteLeaving(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.leaving) >= maxProbeMarks {
		clear(v.leaving)
	}
	v.leaving[name] = time.Now()
}

// NotifyLeave implements memberlist.EventDelegate.
func (v *view) NotifyLeave(n *memberlist.Node) {
	v.mu.Lock()
	at, left := v.leaving[n.Name]
	delete(v.leaving, n.Name)
	v.mu.Unlock()
	if left && time.Since(at) < leaveNoticeTTL {
		v.set(v.member(n, StateLeft), EventLeave)
		return
	}
	v.set(v.member(n, StateDead), EventFailed)
}

func (v *view) set(m Member, t EventType) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.members[m.Name] = m
	if m.State == StateAlive {
		delete(v.goneAt, m.Name)
		delete(v.leaving, m.Name)
	} else {
		v.goneAt[m.Name] = time.Now()
	}
	if v.closed {
		return
	}
	select {
	case v.events <- Event{Type: t, Member: m}:
	default:
		v.dropped++
		v.log.Warn("gossip events channel full, dropping event", "event", t.String(), "member", m.Name, "dropped", v.dropped)
	}
}

// list returns the members sorted by name. Dead and left members are kept
// for retain, then forgotten, as memberlist forgets them.
func (v *view) list() []Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Member, 0, len(v.members))
	for name, m := range v.members {
		if at, gone := v.goneAt[name]; gone && time.Since(at) > v.retain {
			delete(v.members, name)
			delete(v.goneAt, name)
			continue
		}
		m.Meta.Shares = slices.Clone(m.Meta.Shares)
		m.Meta.ManifestHash = slices.Clone(m.Meta.ManifestHash)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// state returns name's state in the list, 0 if it is not listed.
func (v *view) state(name string) State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.members[name].State
}

// close closes the events channel; later notifications only update the list.
func (v *view) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		v.closed = true
		close(v.events)
	}
}
