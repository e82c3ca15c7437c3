package sharerpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyshare/keyshare/pkg/policy"
	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestHolderPeerRefusedBeforeHandler: the holder daemon's TLS config admits
// the holder role (gossip peers share the CA), so a leaked holder
// certificate reached every handler and was denied, audited and logged in
// a loop. Now it gets PermissionDenied on every method, health included,
// and no handler runs.
func TestHolderPeerRefusedBeforeHandler(t *testing.T) {
	f := newFixture(t)
	// The daemon's own TLS config admits holders; so does this server.
	srv, err := NewServer(ServerOptions{
		TLS:     f.holder.ServerConfig(identity.AllowRoles(identity.RoleUnsealer, identity.RoleHolder)),
		Handler: f.h, HandshakeTimeout: callTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", serverIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	h2 := f.source(t, "holder", "h2")
	cfg := h2.ClientConfig(expectHolder())
	cfg.NextProtos = []string{"h2"}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(clientIP + ":0"))}
	conn, err := grpc.NewClient("passthrough:///"+f.addr,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := sharepb.NewShareServiceClient(conn)
	calls := map[string]func() error{
		"Release": func() error {
			_, err := c.Release(ctx, &sharepb.ReleaseRequest{VaultNode: "vault-1", Generation: 1})
			return err
		},
		"Manifest": func() error { _, err := c.Manifest(ctx, &sharepb.ManifestRequest{}); return err },
		"Commit":   func() error { _, err := c.Commit(ctx, &sharepb.CommitRequest{Generation: 2}); return err },
		"Abort":    func() error { _, err := c.Abort(ctx, &sharepb.AbortRequest{Generation: 2}); return err },
		"Stage": func() error {
			_, err := c.Stage(ctx, &sharepb.StageRequest{Generation: 2, Shares: []*sharepb.Share{{Index: 1, Value: []byte{1}}}})
			return err
		},
		"Health": func() error {
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if code := status.Code(err); code != codes.PermissionDenied {
			t.Errorf("%s from a holder: code %s, want PermissionDenied", name, code)
		}
		if d, ok := DenialFromError(err); !ok || d.Reason != policy.ReasonPeerNotAllowed {
			t.Errorf("%s from a holder: denial %v, want reason %s", name, d, policy.ReasonPeerNotAllowed)
		}
	}
	if n := f.h.calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for a holder peer", n)
	}
	// An unsealer on the same server is served.
	if _, err := f.unsealerClient(t).Release(ctx, "vault-1", 1); err != nil {
		t.Fatalf("unsealer refused: %v", err)
	}
}

// zeroCheckHandler hands out fresh share slices and keeps them, to see
// what becomes of them after the response is sent.
type zeroCheckHandler struct {
	fakeHandler
	mu   sync.Mutex
	kept [][]byte
}

func (h *zeroCheckHandler) Release(context.Context, Peer, ReleaseRequest) ([]Share, error) {
	out := make([]Share, len(testShares))
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range testShares {
		out[i] = Share{Index: s.Index, Value: bytes.Clone(s.Value)}
		h.kept = append(h.kept, out[i].Value)
	}
	return out, nil
}

func (h *zeroCheckHandler) allZero() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.kept {
		if !bytes.Equal(b, make([]byte, len(b))) {
			return false
		}
	}
	return len(h.kept) > 0
}

// TestReleasedSharesZeroedAfterSend: the bundle a handler returns is zeroed
// by the server once the response is on its way; the client still gets the
// right bytes. Before, the server left them to the garbage collector.
func TestReleasedSharesZeroedAfterSend(t *testing.T) {
	h := &zeroCheckHandler{}
	f := newFixture(t, func(o *ServerOptions) { o.Handler = h })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	got, err := f.unsealerClient(t).Release(ctx, "vault-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Share{{Index: 1, Value: bytes.Repeat([]byte{0xa1}, 33)}, {Index: 2, Value: bytes.Repeat([]byte{0xb2}, 33)}}
	for i, s := range got {
		if s.Index != want[i].Index || !bytes.Equal(s.Value, want[i].Value) {
			t.Fatalf("share %d arrived altered", i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !h.allZero() {
		if time.Now().After(deadline) {
			t.Fatal("the handler's share bytes were not zeroed 10 s after the response arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSourceCapsShareService: one source address may hold at most
// MaxHandshakesPerSource unfinished handshakes and MaxConnsPerSource
// connections; the rest are closed at once, and other sources are served.
// Before, every connection was kept (handshakes until their timeout).
func TestSourceCapsShareService(t *testing.T) {
	const hsCap, connCap = 4, 8
	f := newFixture(t, func(o *ServerOptions) {
		o.MaxHandshakesPerSource, o.MaxConnsPerSource = hsCap, connCap
	})
	dial := func() net.Conn {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(hostileAttackIP + ":0")), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedSoon reports whether the server closes c within d.
	closedSoon := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}

	t.Run("handshakes", func(t *testing.T) {
		const n = 3 * hsCap
		conns := make([]net.Conn, n)
		for i := range conns {
			conns[i] = dial()
		}
		var closed atomic.Int32
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if closedSoon(c, 2*time.Second) {
					closed.Add(1)
				}
			}()
		}
		wg.Wait()
		// The handshake timeout is callTimeout (30 s): anything closed
		// within 2 s was refused by the cap.
		if got := closed.Load(); got < n-hsCap {
			t.Fatalf("%d of %d silent connections closed at once, want at least %d", got, n, n-hsCap)
		}
		for _, c := range conns {
			c.Close()
		}
	})

	t.Run("connections", func(t *testing.T) {
		cfg := f.unsealer.ClientConfig(expectHolder())
		cfg.NextProtos = []string{"h2"}
		ok := 0
		deadline := time.Now().Add(20 * time.Second)
		// Handshakes of the previous subtest are released asynchronously.
		for ok < connCap && time.Now().Before(deadline) {
			tc := tls.Client(dial(), cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			_ = tc.SetDeadline(time.Time{})
			t.Cleanup(func() { tc.Close() })
			ok++
		}
		if ok != connCap {
			t.Fatalf("only %d connections of %d admitted", ok, connCap)
		}
		for i := range 3 {
			tc := tls.Client(dial(), cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err == nil {
				t.Fatalf("connection %d over the cap of %d was admitted", connCap+i+1, connCap)
			}
		}
		// Another source is served meanwhile.
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := f.unsealerClient(t).Manifest(ctx); err != nil {
			t.Fatalf("coordinator from another address refused: %v", err)
		}
	})
}
