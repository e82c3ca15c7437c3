package sharerpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/tlstest"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Addresses of the hostile-input tests, apart from the rest of the suite.
const (
	hostileServerIP = "127.0.0.201"
	hostileProbeIP  = "127.0.0.202"
	hostileAttackIP = "127.0.0.203"
)

// hostileServer serves f's handler on hostileServerIP with a short
// handshake timeout, and returns its address.
func hostileServer(t *testing.T, f *fixture, handshake time.Duration) string {
	t.Helper()
	srv, err := NewServer(ServerOptions{
		TLS:              f.holder.ServerConfig(identity.AllowRoles(identity.RoleUnsealer)),
		Handler:          f.h,
		HandshakeTimeout: handshake,
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv, hostileServerIP)
}

// probeClient is a coordinator's client from hostileProbeIP.
func probeClient(t *testing.T, f *fixture, addr string, timeout time.Duration) *Client {
	t.Helper()
	c, err := Dial(addr, f.unsealer.ClientConfig(expectHolder()), f.id("holder", "h1"),
		ClientOptions{LocalAddr: netip.MustParseAddr(hostileProbeIP), CallTimeout: timeout, HandshakeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// attack is a set of hostile connections and when the server closed each.
type attack struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	held   []time.Duration // how long the server kept each connection
	failed []error
}

// open connects from hostileAttackIP, runs send (which may write slowly),
// and reads until the server closes the connection or bound passes.
func (a *attack) open(addr string, bound time.Duration, send func(net.Conn)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(hostileAttackIP + ":0")), Timeout: 10 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			a.fail(fmt.Errorf("dial: %w", err))
			return
		}
		defer conn.Close()
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(bound))
		stop := make(chan struct{})
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			if send != nil {
				send(&stoppable{Conn: conn, stop: stop})
			}
		}()
		_, err = io.Copy(io.Discard, conn)
		close(stop)
		<-sent
		if isTimeout(err) {
			a.fail(fmt.Errorf("server kept a hostile connection open for %s", bound))
			return
		}
		a.mu.Lock()
		a.held = append(a.held, time.Since(start))
		a.mu.Unlock()
	}()
}

func (a *attack) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failed = append(a.failed, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stoppable is a connection whose writer gives up once the reader is done.
type stoppable struct {
	net.Conn
	stop chan struct{}
}

// trickle writes b one byte every gap until it is written or the
// connection is closed.
func trickle(b []byte, gap time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		s := c.(*stoppable)
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			select {
			case <-s.stop:
				return
			case <-time.After(gap):
			}
		}
	}
}

func sendAll(b []byte) func(net.Conn) {
	return func(c net.Conn) { _, _ = c.Write(b) }
}

// TestHealthUnderSlowloris opens many connections that send nothing, send a
// ClientHello a byte at a time, or send a ClientHello and never finish the
// handshake, and checks that the holder keeps answering health checks on an
// open connection and on fresh ones, cuts every hostile connection at its
// handshake timeout, and leaves no goroutine behind.
func TestHealthUnderSlowloris(t *testing.T) {
	const (
		handshake = 2 * time.Second
		silent    = 150
		trickling = 30
		halfDone  = 30
		// okBound bounds a health check on an open connection and
		// freshBound one on a new connection, during the attack, on a
		// loaded 2-core machine under -race.
		okBound    = 2 * time.Second
		freshBound = 5 * time.Second
	)
	f := newFixture(t)
	addr := hostileServer(t, f, handshake)
	c := probeClient(t, f, addr, okBound)
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health before the attack: %v", err)
	}
	base := runtime.NumGoroutine()
	hello := tlstest.ClientHello(t, f.unsealer.ClientConfig(expectHolder()))

	closeBound := handshake + 5*time.Second
	var a attack
	start := time.Now()
	for range silent {
		a.open(addr, closeBound, nil)
	}
	for range trickling {
		a.open(addr, closeBound, trickle(hello, 100*time.Millisecond))
	}
	for range halfDone {
		a.open(addr, closeBound, sendAll(hello))
	}

	var worstOpen, worstFresh time.Duration
	checks := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ; time.Since(start) < handshake+time.Second; <-tick.C {
		t0 := time.Now()
		if err := c.Health(ctx); err != nil {
			t.Fatalf("health on an open connection during the attack, after %s: %v", time.Since(start), err)
		}
		worstOpen = max(worstOpen, time.Since(t0))
		checks++
		if checks%10 == 1 {
			t0 = time.Now()
			fresh := probeClient(t, f, addr, freshBound)
			err := fresh.Health(ctx)
			fresh.Close()
			if err != nil {
				t.Fatalf("health on a new connection during the attack, after %s: %v", time.Since(start), err)
			}
			worstFresh = max(worstFresh, time.Since(t0))
		}
	}
	a.wg.Wait()
	for _, err := range a.failed {
		t.Error(err)
	}
	var longest time.Duration
	for _, d := range a.held {
		longest = max(longest, d)
	}
	t.Logf("%d hostile connections; server closed them all, the last after %s (handshake timeout %s); "+
		"%d health checks, slowest %s on the open connection, %s on a new one",
		len(a.held), longest.Round(time.Millisecond), handshake, checks, worstOpen.Round(time.Millisecond), worstFresh.Round(time.Millisecond))
	if worstOpen > okBound {
		t.Errorf("a health check took %s during the attack, bound %s", worstOpen, okBound)
	}
	// Every per-connection goroutine of the server is gone again.
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > base+20; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the attack, %d before", n, base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}
