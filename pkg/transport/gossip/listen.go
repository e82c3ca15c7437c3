package gossip

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// acceptLoop accepts TCP connections and serves each in its own goroutine,
// up to MaxConns at once.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		raw, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("failed to accept gossip connection", "addr", t.ln.Addr().String(), "err", err)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		ip := remoteIP(raw)
		if !t.sourceAllowed(ip) {
			t.log.Debug("gossip connection from a source outside the allowed CIDRs, refusing it", "remote", raw.RemoteAddr().String())
			_ = raw.Close()
			continue
		}
		if !t.beginHandshake(ip) {
			// One address may not hold the listener with handshakes it
			// never finishes; see maxHandshakesPerIP.
			t.log.Debug("too many gossip handshakes from one address, refusing one", "remote", raw.RemoteAddr().String(), "limit", maxHandshakesPerIP)
			_ = raw.Close()
			continue
		}
		select {
		case t.sem <- struct{}{}:
		default:
			t.warnAbout(ip, "too many gossip connections, refusing one", "remote", raw.RemoteAddr().String(), "limit", t.cfg.MaxConns)
			t.endHandshake(ip)
			_ = raw.Close()
			continue
		}
		if !t.track(raw) {
			<-t.sem
			t.endHandshake(ip)
			_ = raw.Close()
			return
		}
		t.wg.Add(1)
		go t.serve(raw, ip)
	}
}

// maxHandshakesPerIP bounds the incoming connections from one address that
// have not finished their TLS handshake. Without it, one host that opens
// connections and sends nothing holds all MaxConns slots (each for
// HandshakeTimeout, again and again) and locks out every member's new
// connections: joins, push-pulls and reconnects. Members open a few at a
// time.
const maxHandshakesPerIP = 32

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// beginHandshake counts a connection from ip that is being handshaken and
// reports false if ip already has maxHandshakesPerIP of them.
func (t *Transport) beginHandshake(ip netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handshaking[ip] >= maxHandshakesPerIP {
		return false
	}
	t.handshaking[ip]++
	return true
}

func (t *Transport) endHandshake(ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handshaking[ip]--; t.handshaking[ip] <= 0 {
		delete(t.handshaking, ip)
	}
}

// track registers an incoming connection so that Shutdown can close it.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.incoming[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.incoming, c)
}

// serve authenticates one incoming connection and dispatches it by its kind
// byte: a stream goes to memberlist, packets are read here.
func (t *Transport) serve(raw net.Conn, ip netip.Addr) {
	defer t.wg.Done()
	defer func() { <-t.sem }()
	defer t.untrack(raw)
	remote := raw.RemoteAddr().String()

	conn := tls.Server(raw, t.server)
	_ = conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	err := conn.HandshakeContext(t.ctx)
	t.endHandshake(ip)
	if err != nil {
		t.log.Debug("gossip handshake failed", "remote", remote, "err", err)
		_ = conn.Close()
		return
	}
	id, err := t.policy.verifyState(conn.ConnectionState())
	if err != nil {
		t.warnAbout(ip, "refusing gossip connection", "remote", remote, "err", err)
		_ = conn.Close()
		return
	}
	var kind [1]byte
	if _, err := io.ReadFull(conn, kind[:]); err != nil {
		// Address probes close right after the handshake.
		_ = conn.Close()
		return
	}
	switch kind[0] {
	case kindStream:
		_ = conn.SetDeadline(time.Time{})
		t.untrack(raw)
		select {
		case t.streamCh <- t.filterStream(conn, id.String()):
		case <-t.ctx.Done():
			_ = conn.Close()
		}
	case kindPacket:
		t.readPackets(conn, peerAddr{Addr: raw.RemoteAddr(), id: id.String()})
		_ = conn.Close()
	default:
		t.warnAbout(ip, "refusing gossip connection with unknown kind", "remote", remote, "peer", id.String(), "kind", kind[0])
		_ = conn.Close()
	}
}

// readPackets reads length-prefixed frames until the peer goes idle, closes,
// or breaks the rules. A frame over MaxPacketSize, or a packet that lies
// about its sender, ends the connection without reading further.
func (t *Transport) readPackets(conn *tls.Conn, from peerAddr) {
	var hdr [4]byte
	for {
		_ = conn.SetReadDeadline(time.Now().Add(2 * t.cfg.IdleTimeout))
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > uint32(t.cfg.MaxPacketSize) {
			t.warnAbout(addrIP(from.Addr), "refusing gossip packet: bad length", "remote", from.String(), "peer", from.id,
				"length", n, "limit", t.cfg.MaxPacketSize)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
		buf := make([]byte, n)
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.log.Debug("gossip packet truncated", "remote", from.String(), "peer", from.id, "err", err)
			return
		}
		ts := time.Now()
		buf, err := t.filterPacket(buf, from.id)
		if err != nil {
			t.warnAbout(addrIP(from.Addr), "refusing gossip packet", "remote", from.String(), "peer", from.id, "err", err)
			return
		}
		if buf == nil {
			continue // nothing left once messages about others were dropped
		}
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf, From: from, Timestamp: ts}:
		case <-t.ctx.Done():
			return
		}
	}
}

// sourceAllowed reports whether ip may connect: any address when no
// SourceCIDRs are configured.
func (t *Transport) sourceAllowed(ip netip.Addr) bool {
	if len(t.cfg.SourceCIDRs) == 0 {
		return true
	}
	for _, p := range t.cfg.SourceCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
