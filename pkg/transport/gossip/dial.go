package gossip

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// reprobeInterval is the shortest time between two background probes of the
// same address.
const reprobeInterval = time.Second

// dial connects to addr, completes the TLS handshake, checks the peer's
// identity and records it in the address book.
func (t *Transport) dial(addr string, timeout time.Duration) (*tls.Conn, string, error) {
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: t.localAddr}, Config: t.client}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("failed to connect to gossip peer %s: %w", addr, err)
	}
	conn := c.(*tls.Conn)
	id, err := t.policy.verifyState(conn.ConnectionState())
	if err != nil {
		_ = conn.Close()
		return nil, "", fmt.Errorf("refusing gossip peer %s: %w", addr, err)
	}
	t.book.record(addr, id.String())
	return conn, id.String(), nil
}

// dialKind dials a.Addr, insists that the peer is a.Name when a name is
// given, and announces the connection kind.
func (t *Transport) dialKind(a memberlist.Address, timeout time.Duration, kind byte) (*tls.Conn, string, error) {
	conn, id, err := t.dial(a.Addr, timeout)
	if err != nil {
		return nil, "", err
	}
	if a.Name != "" && a.Name != id {
		_ = conn.Close()
		return nil, "", fmt.Errorf("gossip peer %s presented certificate %s, not the expected %s", a.Addr, id, a.Name)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{kind}); err != nil {
		_ = conn.Close()
		return nil, "", fmt.Errorf("failed to open gossip stream to %s: %w", a.String(), err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, id, nil
}

// goTracked runs fn in a goroutine that Shutdown waits for. It reports false,
// without running fn, once the transport is shut down.
func (t *Transport) goTracked(fn func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn()
	}()
	return true
}

// probeAsync learns, in the background, which ID is served at addr. Probes
// of one address are spaced by reprobeInterval.
func (t *Transport) probeAsync(addr string) {
	if !t.book.startProbe(addr, reprobeInterval) {
		return
	}
	started := t.goTracked(func() {
		defer t.book.endProbe(addr)
		t.probe(addr)
	})
	if !started {
		t.book.endProbe(addr)
	}
}

// probeAll probes every address in addrs concurrently and returns when all
// are done, at most DialTimeout later.
func (t *Transport) probeAll(addrs []string) {
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		if !t.goTracked(func() { defer wg.Done(); t.probe(addr) }) {
			wg.Done()
		}
	}
	wg.Wait()
}

func (t *Transport) probe(addr string) {
	conn, id, err := t.dial(addr, t.cfg.DialTimeout)
	if err != nil {
		t.log.Debug("gossip probe failed", "addr", addr, "err", err)
		return
	}
	t.log.Debug("gossip probe", "addr", addr, "id", id)
	_ = conn.Close()
}
