package gossip

import (
	"crypto/tls"
	"encoding/binary"
	"time"

	"github.com/hashicorp/memberlist"
)

// outPacket is one packet waiting for its peer's connection.
type outPacket struct {
	buf  []byte
	name string
}

// sender owns the cached packet connection to one address. It drains a
// bounded queue, so memberlist never waits on a slow or partitioned peer.
type sender struct {
	t     *Transport
	addr  string
	queue chan outPacket
	conn  *tls.Conn
	id    string
}

// enqueue hands a packet to the sender for a.Addr, starting one if needed.
// The packet is dropped if the queue is full or the transport is shut down.
func (t *Transport) enqueue(a memberlist.Address, buf []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	s, ok := t.senders[a.Addr]
	if !ok {
		s = &sender{t: t, addr: a.Addr, queue: make(chan outPacket, t.cfg.QueueDepth)}
		t.senders[a.Addr] = s
		t.wg.Add(1)
		go s.run()
	}
	select {
	case s.queue <- outPacket{buf: buf, name: a.Name}:
	default:
		t.log.Debug("gossip packet queue full, dropping packet", "peer", a.String())
	}
}

func (s *sender) run() {
	defer s.t.wg.Done()
	defer s.close()
	idle := time.NewTimer(s.t.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-s.t.ctx.Done():
			return
		case p := <-s.queue:
			s.send(p)
			idle.Reset(s.t.cfg.IdleTimeout)
		case <-idle.C:
			if s.retire() {
				return
			}
			idle.Reset(s.t.cfg.IdleTimeout)
		}
	}
}

// retire removes an idle sender, unless a packet slipped in meanwhile.
func (s *sender) retire() bool {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if len(s.queue) > 0 {
		return false
	}
	delete(s.t.senders, s.addr)
	return true
}

// drain drops the packets queued while a dial failed: by the time another
// dial could succeed they would be stale.
func (s *sender) drain() {
	for {
		select {
		case <-s.queue:
		default:
			return
		}
	}
}

func (s *sender) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// send writes one frame, dialing first if needed. A write on a cached
// connection that fails (the peer restarted, say) is retried once on a
// fresh connection; after that the packet is lost, as a datagram would be.
func (s *sender) send(p outPacket) {
	for attempt := 0; attempt < 2; attempt++ {
		var prefix []byte
		if s.conn == nil {
			conn, id, err := s.t.dial(s.addr, s.t.cfg.DialTimeout)
			if err != nil {
				s.t.log.Debug("gossip packets dropped", "peer", s.addr, "queued", len(s.queue)+1, "err", err)
				s.drain()
				return
			}
			s.conn, s.id, prefix = conn, id, []byte{kindPacket}
		}
		if p.name != "" && p.name != s.id {
			s.t.log.Warn("gossip packet dropped: peer certificate does not match node name",
				"addr", s.addr, "want", p.name, "got", s.id)
			// The address may have been re-provisioned; look again next time.
			s.close()
			return
		}
		frame := make([]byte, len(prefix)+4+len(p.buf))
		n := copy(frame, prefix)
		binary.BigEndian.PutUint32(frame[n:], uint32(len(p.buf)))
		copy(frame[n+4:], p.buf)
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.t.cfg.DialTimeout))
		if _, err := s.conn.Write(frame); err == nil {
			return
		} else if attempt == 1 {
			s.t.log.Debug("gossip packet dropped", "peer", s.addr, "err", err)
		}
		s.close()
	}
}
