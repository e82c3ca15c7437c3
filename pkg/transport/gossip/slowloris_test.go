package gossip

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/internal/testkit/tlstest"
)

// Addresses of the slowloris tests: members on 127.0.0.211-214, the
// attackers on 127.0.0.215 (no certificate) and 127.0.0.216 (a valid
// holder certificate).
const (
	slowBase     = 210
	slowAttackIP = 215
	slowRawIP    = 216
)

// helloRecord returns the first TLS record a gossip client sends: a
// ClientHello with the gossip ALPN protocol.
func helloRecord(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{alpnProtocol}
	cfg.ServerName = "gossip" // only the first flight is sent
	return tlstest.ClientHello(t, cfg)
}

// siege keeps n connections open to addr from ip until ctx ends: each sends
// what send writes, then waits for the server to close it, then reconnects.
// It counts the connections made and those the server held longer than
// bound.
type siege struct {
	wg       sync.WaitGroup
	made     atomic.Int64
	overlong atomic.Int64
}

func (s *siege) run(ctx context.Context, n int, ip int, addr string, bound time.Duration, send func(context.Context, net.Conn)) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: hostIP(ip)}, Timeout: 5 * time.Second}
	for range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for ctx.Err() == nil {
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					// Refused or reset while the server sheds load:
					// try again a little later.
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				s.made.Add(1)
				start := time.Now()
				stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
				go func() {
					if send != nil {
						send(ctx, conn)
					}
				}()
				_ = conn.SetReadDeadline(start.Add(bound))
				_, err = io.Copy(io.Discard, conn)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					s.overlong.Add(1)
				}
				stop()
				_ = conn.Close()
				if time.Since(start) < 50*time.Millisecond {
					// Refused at once: pace the reconnects, so the
					// siege holds connections rather than burning CPU.
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
}

func dribble(b []byte, gap time.Duration) func(context.Context, net.Conn) {
	return func(ctx context.Context, c net.Conn) {
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// TestSlowlorisKeepsMembersConverged besieges a member with more silent
// TCP connections than its connection limit, ClientHellos sent a byte at a
// time, and handshakes left half done, all from one address without a
// certificate, re-opened as soon as they are cut. The members must stay
// converged, and a new member must still be able to join through the
// besieged one while the attack goes on.
func TestSlowlorisKeepsMembersConverged(t *testing.T) {
	if testing.Short() {
		t.Skip("slowloris siege takes about 15 s")
	}
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, slowBase, 3)
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })
	target := cs[0].AdvertiseAddr()
	_, client := tlsPair(ca, issue(t, ca, ca.ID("holder", "raw"), hostIP(slowRawIP)))
	hello := helloRecord(t, client)

	ctx, cancel := context.WithCancel(context.Background())
	var s siege
	bound := DefaultHandshakeTimeout + 5*time.Second
	s.run(ctx, DefaultMaxConns+100, slowAttackIP, target, bound, nil)
	s.run(ctx, 30, slowAttackIP, target, bound, dribble(hello, 100*time.Millisecond))
	s.run(ctx, 30, slowAttackIP, target, bound, func(_ context.Context, c net.Conn) { _, _ = c.Write(hello) })
	defer func() { cancel(); s.wg.Wait() }()

	// Let the siege fill the listener, then start a fourth member seeded
	// only with the besieged one.
	proctest.WaitForErr(t, 20*time.Second, "the siege to open its connections", func() error {
		if n := s.made.Load(); n < DefaultMaxConns {
			return fmt.Errorf("%d connections made", n)
		}
		return nil
	})
	cfg := testConfig(t, ca, node{name: "holder/h4", ip: slowBase + 4, seeds: []string{target}})
	cs = append(cs, start(t, cfg))
	took := proctest.WaitForErr(t, DefaultHandshakeTimeout, "a new member to join during the siege", func() error { return converged(cs) })
	holdFor(t, DefaultHandshakeTimeout, "members disturbed by the siege", func() error { return converged(cs) })
	cancel()
	s.wg.Wait()
	t.Logf("siege: %d connections made, %d held past %s; a new member joined through the besieged one in %s",
		s.made.Load(), s.overlong.Load(), bound, took.Round(time.Millisecond))
	if n := s.overlong.Load(); n != 0 {
		t.Fatalf("%d hostile connections were held open longer than %s", n, bound)
	}
}

// TestGarbageFloodKeepsMembersConverged has a peer with a valid
// certificate send random bytes: as packet frames of every size within the
// limit, and as streams. Every connection is cut, and the members stay
// converged.
func TestGarbageFloodKeepsMembersConverged(t *testing.T) {
	ca := newCA(t, testTrustDomain)
	cs := startCluster(t, ca, slowBase, 3)
	proctest.WaitForErr(t, 20*time.Second, "3 members to converge", func() error { return converged(cs) })
	target := cs[0].AdvertiseAddr()
	_, client := tlsPair(ca, issue(t, ca, ca.ID("holder", "raw"), hostIP(slowRawIP)))
	rng := rand.New(rand.NewPCG(1, 2))
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var wg sync.WaitGroup
	for i := range 40 {
		conn := rawClient(t, client, target)
		var msg []byte
		if i%2 == 0 {
			for range 50 {
				body := junk(1 + rng.IntN(1400))
				msg = append(msg, frame(kindPacket, uint32(len(body)), body)[1:]...)
			}
			msg = append([]byte{kindPacket}, msg...)
		} else {
			msg = append([]byte{kindStream}, junk(1+rng.IntN(64<<10))...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = conn.Write(msg)
		}()
		expectClosed(t, conn)
	}
	wg.Wait()
	holdFor(t, 3*LoopbackTuning().ProbeInterval, "members disturbed by the garbage", func() error { return converged(cs) })
}
