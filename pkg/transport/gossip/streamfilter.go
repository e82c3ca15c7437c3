package gossip

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Bounds on a push/pull message, far above what a keyshare cluster sends.
const (
	maxPushPullNodes     = 4096
	maxPushPullUserState = 64 << 10
)

// pushPullHeader and pushNodeState mirror memberlist's (net.go, v0.7.0);
// msgpack matches fields by name.
type pushPullHeader struct {
	Nodes        int
	UserStateLen int
	Join         bool
}

type pushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       memberlist.NodeStateType
	Vsn         []uint8
}

// filteredStream is a memberlist stream (push/pull, TCP ping) whose first
// message, the only one memberlist reads from it, is vetted like packets
// before memberlist sees it: a push/pull loses the entries that speak for
// another member (see speakfor.go). Writes, deadlines and Close go to the
// TLS connection.
type filteredStream struct {
	net.Conn
	t    *Transport
	peer string
	r    *bufio.Reader

	once    sync.Once
	pending []byte
	err     error
}

func (t *Transport) filterStream(c net.Conn, peer string) net.Conn {
	return &filteredStream{Conn: c, t: t, peer: peer, r: bufio.NewReader(c)}
}

func (s *filteredStream) Read(p []byte) (int, error) {
	s.once.Do(func() {
		s.pending, s.err = s.t.vetStream(s.r, s.peer)
		switch {
		case errors.Is(s.err, errStreamRefused):
			s.t.warnAbout(addrIP(s.RemoteAddr()), "refusing gossip stream", "peer", s.peer, "remote", s.RemoteAddr().String(), "err", s.err)
			_ = s.Conn.Close()
		case s.err != nil:
			// A timeout or a closed connection: memberlist reports it.
			_ = s.Conn.Close()
		}
	})
	if s.err != nil {
		return 0, s.err
	}
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	return s.r.Read(p)
}

// errStreamRefused wraps the reasons a stream is cut.
var errStreamRefused = errors.New("gossip stream refused")

// vetStream reads the first message of a stream from r and returns the
// bytes memberlist is to read in its place.
func (t *Transport) vetStream(r *bufio.Reader, peer string) ([]byte, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	switch kind {
	case msgPushPull:
		return t.vetPushPull(r, peer)
	case msgPing:
		var raw bytes.Buffer
		var p pingSender
		if err := codec.NewDecoder(io.TeeReader(r, &raw), &codec.MsgpackHandle{}).Decode(&p); err != nil {
			return nil, fmt.Errorf("%w: failed to decode a ping from %s: %w", errStreamRefused, peer, err)
		}
		if p.SourceNode != peer {
			return nil, fmt.Errorf("%w: ping claims to come from %q but the connection is authenticated as %s", errStreamRefused, p.SourceNode, peer)
		}
		return append([]byte{kind}, raw.Bytes()...), nil
	case msgCompress, msgEncrypt, msgHasLabel:
		return nil, fmt.Errorf("%w: message type %d from %s is not used over the TLS transport", errStreamRefused, kind, peer)
	}
	if kind > msgErr {
		return nil, fmt.Errorf("%w: unknown message type %d from %s", errStreamRefused, kind, peer)
	}
	// Acks, user and error messages carry nothing about members.
	return []byte{kind}, nil
}

// vetPushPull decodes a push/pull state, drops or downgrades the entries
// the sender may not speak for, and encodes what is left as memberlist
// would have.
func (t *Transport) vetPushPull(r *bufio.Reader, peer string) ([]byte, error) {
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	var h pushPullHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: failed to decode a push/pull header from %s: %w", errStreamRefused, peer, err)
	}
	if h.Nodes < 0 || h.Nodes > maxPushPullNodes || h.UserStateLen < 0 || h.UserStateLen > maxPushPullUserState {
		return nil, fmt.Errorf("%w: push/pull from %s announces %d nodes and %d bytes of user state", errStreamRefused, peer, h.Nodes, h.UserStateLen)
	}
	kept := make([]pushNodeState, 0, h.Nodes)
	for i := 0; i < h.Nodes; i++ {
		var st pushNodeState
		if err := dec.Decode(&st); err != nil {
			return nil, fmt.Errorf("%w: failed to decode push/pull entry %d from %s: %w", errStreamRefused, i, peer, err)
		}
		if t.vetEntry(peer, &st) == pass {
			kept = append(kept, st)
		}
	}
	user := make([]byte, h.UserStateLen)
	if _, err := io.ReadFull(r, user); err != nil {
		return nil, fmt.Errorf("%w: push/pull from %s is cut short: %w", errStreamRefused, peer, err)
	}
	var out bytes.Buffer
	out.WriteByte(msgPushPull)
	enc := codec.NewEncoder(&out, &codec.MsgpackHandle{})
	h.Nodes = len(kept)
	if err := enc.Encode(&h); err != nil {
		return nil, fmt.Errorf("failed to re-encode a push/pull header: %w", err)
	}
	for i := range kept {
		if err := enc.Encode(&kept[i]); err != nil {
			return nil, fmt.Errorf("failed to re-encode a push/pull entry: %w", err)
		}
	}
	out.Write(user)
	return out.Bytes(), nil
}

// vetEntry applies the rules of speakfor.go to one push/pull entry. A
// third party's "left" becomes "dead", which memberlist takes as a
// suspicion.
func (t *Transport) vetEntry(peer string, st *pushNodeState) verdict {
	if st.Name == peer {
		t.said.note(peer, st.Incarnation)
		return pass
	}
	switch st.State {
	case memberlist.StateAlive:
		return t.judgeAlive(peer, st.Name, st.Incarnation, st.Addr, st.Port)
	case memberlist.StateLeft:
		st.State = memberlist.StateDead
	}
	return t.judgeAccusation(peer, st.Name, st.Incarnation, false)
}
