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

const (
	// reprobeInterval is the shortest time between two background probes of
	// the same address.
	reprobeInterval = time.Second
	// maxProbes bounds concurrent address probes, and maxMergeProbes the
	// addresses probed for one join, so a peer that gossips many made-up
	// addresses cannot make this node dial all of them at once.
	maxProbes      = 16
	maxMergeProbes = 64
)

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
// of one address are spaced by reprobeInterval; when maxProbes are already
// running the probe is skipped (a later alive message asks again).
func (t *Transport) probeAsync(addr string) {
	if !t.book.startProbe(addr, reprobeInterval) {
		return
	}
	select {
	case t.probeSem <- struct{}{}:
	default:
		t.book.endProbe(addr)
		return
	}
	started := t.goTracked(func() {
		defer t.book.endProbe(addr)
		defer func() { <-t.probeSem }()
		t.probe(addr)
	})
	if !started {
		<-t.probeSem
		t.book.endProbe(addr)
	}
}

// probeAll probes the first maxMergeProbes addresses in addrs, at most
// maxProbes at a time, and returns when all are done.
func (t *Transport) probeAll(addrs []string) {
	if len(addrs) > maxMergeProbes {
		t.log.Warn("too many unknown addresses to verify at once; verifying the first ones", "count", len(addrs), "limit", maxMergeProbes)
		addrs = addrs[:maxMergeProbes]
	}
	var wg sync.WaitGroup
	for _, addr := range addrs {
		select {
		case t.probeSem <- struct{}{}:
		case <-t.ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		started := t.goTracked(func() {
			defer wg.Done()
			defer func() { <-t.probeSem }()
			t.probe(addr)
		})
		if !started {
			wg.Done()
			<-t.probeSem
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
