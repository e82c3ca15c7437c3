package sharerpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/keyshare/keyshare/internal/testkit/devpki"
	"github.com/keyshare/keyshare/internal/testkit/proctest"
	"github.com/keyshare/keyshare/pkg/transport/identity"
)

const (
	serverIP = "127.0.0.21"
	clientIP = "127.0.0.22"
	// callTimeout bounds each call in the tests: the machine is small and
	// busy, so it is generous.
	callTimeout = 30 * time.Second
)

// fakeHandler counts calls and records what reached it.
type fakeHandler struct {
	calls atomic.Int64
	mu    sync.Mutex
	err   error
	peers []Peer
	stage StageRequest
	gens  []uint64
	// answer, if set, is what Manifest returns.
	answer *Manifest
}

func (h *fakeHandler) enter(p Peer) error {
	h.calls.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peers = append(h.peers, p)
	return h.err
}

func (h *fakeHandler) setErr(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
}

func (h *fakeHandler) lastPeer() Peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peers[len(h.peers)-1]
}

var testShares = []Share{{Index: 1, Value: bytes.Repeat([]byte{0xa1}, 33)}, {Index: 2, Value: bytes.Repeat([]byte{0xb2}, 33)}}

func testManifest(gen uint64) Manifest {
	m := Manifest{Generation: gen, Threshold: 3, Total: 5, HolderID: "spiffe://ks.test/holder/h1"}
	for i := 1; i <= 5; i++ {
		m.Digests = append(m.Digests, Digest{Index: uint8(i), SHA256: [32]byte{byte(i)}})
	}
	return m
}

// errBlock makes the fake Release wait for its context to end.
var errBlock = errors.New("block until the context ends")

// errPanic makes the fake Release panic.
var errPanic = errors.New("panic")

func (h *fakeHandler) Release(ctx context.Context, p Peer, _ ReleaseRequest) ([]Share, error) {
	switch err := h.enter(p); err {
	case nil:
	case errBlock:
		<-ctx.Done()
		return nil, ctx.Err()
	case errPanic:
		panic("share bytes a1a1a1 must not be logged")
	default:
		return nil, err
	}
	// The server zeroes what a handler returns once it is sent: hand out
	// copies, as the holder does (a fresh bundle per release).
	out := make([]Share, len(testShares))
	for i, sh := range testShares {
		out[i] = Share{Index: sh.Index, Value: bytes.Clone(sh.Value)}
	}
	return out, nil
}

func (h *fakeHandler) Manifest(_ context.Context, p Peer) (Manifest, error) {
	h.mu.Lock()
	a := h.answer
	h.mu.Unlock()
	if a != nil {
		return *a, h.enter(p)
	}
	return testManifest(7), h.enter(p)
}

func (h *fakeHandler) Stage(_ context.Context, p Peer, req StageRequest) error {
	h.mu.Lock()
	h.stage = req
	h.mu.Unlock()
	return h.enter(p)
}

func (h *fakeHandler) Commit(_ context.Context, p Peer, gen uint64) error {
	h.mu.Lock()
	h.gens = append(h.gens, gen)
	h.mu.Unlock()
	return h.enter(p)
}

func (h *fakeHandler) Abort(_ context.Context, p Peer, gen uint64) error {
	h.mu.Lock()
	h.gens = append(h.gens, gen)
	h.mu.Unlock()
	return h.enter(p)
}

// fixture is a holder serving on serverIP and the PKI behind it.
type fixture struct {
	ca       *devpki.CA
	dir      string
	holder   *identity.Source
	unsealer *identity.Source
	h        *fakeHandler
	addr     string
	log      *proctest.Buffer
}

// newFixture serves a holder h1 that allows unsealers and the operator
// alice (by exact ID).
func newFixture(t testing.TB, tune ...func(*ServerOptions)) *fixture {
	t.Helper()
	ca, err := devpki.NewCA("ks.test")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca, dir: t.TempDir(), h: &fakeHandler{}, log: &proctest.Buffer{}}
	f.holder = f.sourceFor(t, f.leaf(t, "holder", "h1"), "holder-h1", slog.New(slog.NewTextHandler(f.log, nil)))
	f.unsealer = f.source(t, "unsealer", "u1")
	authz := identity.AllowRoles(identity.RoleUnsealer).Or(identity.AllowIDs(f.id("operator", "alice")))
	opts := ServerOptions{
		TLS:     f.holder.ServerConfig(authz),
		Handler: f.h,
		Logger:  slog.New(slog.NewTextHandler(f.log, nil)),
		// Generous: -race on a small, busy machine.
		HandshakeTimeout: callTimeout,
	}
	for _, fn := range tune {
		fn(&opts)
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = serve(t, srv, serverIP)
	return f
}

// serve runs srv on ip:0 until the test ends and returns its address.
func serve(t testing.TB, srv *Server, ip string) string {
	t.Helper()
	lis, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		// Stop may win the race against a Serve that has not started yet.
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func (f *fixture) id(role, name string) spiffeid.ID {
	return spiffeid.RequireFromString(f.ca.ID(role, name))
}

func (f *fixture) leaf(t testing.TB, role, name string) *devpki.Leaf {
	t.Helper()
	l, err := f.ca.IssueID(role, name, net.ParseIP(serverIP))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) source(t testing.TB, role, name string) *identity.Source {
	t.Helper()
	return f.sourceFor(t, f.leaf(t, role, name), role+"-"+name, nil)
}

func (f *fixture) sourceFor(t testing.TB, l *devpki.Leaf, base string, log *slog.Logger) *identity.Source {
	t.Helper()
	caFile := f.dir + "/ca.pem"
	if err := f.ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	cert, key, err := l.WriteFiles(f.dir, base)
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.New(identity.Options{CAFile: caFile, CertFile: cert, KeyFile: key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects from clientIP with cfg, expecting the holder h1.
func (f *fixture) dial(t testing.TB, cfg *tls.Config, opts ClientOptions) *Client {
	t.Helper()
	opts.LocalAddr = netip.MustParseAddr(clientIP)
	if opts.CallTimeout == 0 {
		opts.CallTimeout = callTimeout
	}
	opts.HandshakeTimeout = callTimeout
	c, err := Dial(f.addr, cfg, f.id("holder", "h1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// unsealerClient is a well-configured coordinator's client.
func (f *fixture) unsealerClient(t testing.TB) *Client {
	t.Helper()
	return f.dial(t, f.unsealer.ClientConfig(identity.AllowRoles(identity.RoleHolder)), ClientOptions{})
}

func errContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}

func expectHolder() identity.Authorizer { return identity.AllowRoles(identity.RoleHolder) }

// errorsUnwrapStatus finds the gRPC status inside a Client error.
func errorsUnwrapStatus(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return err
}
