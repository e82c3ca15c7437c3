package sharerpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"google.golang.org/grpc/credentials"
)

// Per-source caps, as the gossip transport has. Without them one host can
// hold every connection slot and goroutine of a holder with connections it
// never uses, or handshakes it never finishes (each lives for the handshake
// timeout, then is re-opened).
const (
	// DefaultMaxConnsPerSource bounds the open connections from one source
	// address. A coordinator uses one per holder; CLI runs add a few.
	DefaultMaxConnsPerSource = 64
	// DefaultMaxHandshakesPerSource bounds the connections from one source
	// address whose TLS handshake is still running.
	DefaultMaxHandshakesPerSource = 16
)

// sourceCounter counts something per source address under a cap.
type sourceCounter struct {
	mu    sync.Mutex
	limit int
	n     map[netip.Addr]int
}

func newSourceCounter(limit int) *sourceCounter {
	return &sourceCounter{limit: limit, n: map[netip.Addr]int{}}
}

func (c *sourceCounter) acquire(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[a] >= c.limit {
		return false
	}
	c.n[a]++
	return true
}

func (c *sourceCounter) release(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[a]--; c.n[a] <= 0 {
		delete(c.n, a)
	}
}

func sourceOf(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// limitListener closes, at once, a connection from a source that already
// has its cap of open connections.
type limitListener struct {
	net.Listener
	conns *sourceCounter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c)
		if !l.conns.acquire(src) {
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.conns.release(src) })}, nil
	}
}

type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// errTooManyHandshakes is returned to gRPC, which closes the connection.
var errTooManyHandshakes = errors.New("too many unfinished handshakes from this source address")

// limitHandshakes wraps server credentials so that at most limit TLS
// handshakes per source address run at once; others are refused at once.
type limitHandshakes struct {
	credentials.TransportCredentials
	hs *sourceCounter
}

func (l *limitHandshakes) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	src := sourceOf(raw)
	if !l.hs.acquire(src) {
		return nil, nil, fmt.Errorf("share service: %s: %w (limit %d)", src, errTooManyHandshakes, l.hs.limit)
	}
	defer l.hs.release(src)
	return l.TransportCredentials.ServerHandshake(raw)
}

func (l *limitHandshakes) ClientHandshake(ctx context.Context, addr string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return l.TransportCredentials.ClientHandshake(ctx, addr, raw)
}

func (l *limitHandshakes) Clone() credentials.TransportCredentials {
	return &limitHandshakes{TransportCredentials: l.TransportCredentials.Clone(), hs: l.hs}
}
