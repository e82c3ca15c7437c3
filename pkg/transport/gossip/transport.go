package gossip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Connection kinds, sent as the first byte after the TLS handshake.
const (
	kindStream byte = 's'
	kindPacket byte = 'p'
)

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// TransportConfig configures a Transport. Zero durations and sizes take the
// Default* values.
type TransportConfig struct {
	// BindAddr is the host:port to listen on. Port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port others dial. It defaults to the
	// listener's address and is required when binding 0.0.0.0.
	AdvertiseAddr string
	// ServerTLS and ClientTLS are cloned. Both must present this node's
	// certificate and verify the peer's against the deployment CA.
	ServerTLS, ClientTLS *tls.Config
	// TrustDomain is the trust domain every peer must belong to.
	TrustDomain spiffeid.TrustDomain
	// Roles are the roles admitted to gossip (DefaultRoles if empty).
	Roles []identity.Role
	// Logger receives transport diagnostics (discarded if nil).
	Logger *slog.Logger
	// OnLeave, if set, is called with the name of each node whose graceful
	// leave announcement arrives (from that node itself), before memberlist
	// processes it.
	OnLeave func(node string)
	// Name is this node's SPIFFE ID: suspicions of it are bounded by the
	// incarnations it sent (see speakfor.go).
	Name string
	// OnHint, if set, is called (it must not block) when a member relays
	// an alive message about another member: the message is dropped, and
	// this node may ask that member directly. newer says whether the relayed
	// incarnation is above the highest the member told this node itself.
	OnHint func(node, addr string, newer bool)
	// SourceCIDRs, if not empty, are the only source addresses whose
	// connections are accepted; others are closed before the handshake.
	SourceCIDRs []netip.Prefix

	MaxPacketSize    int
	HandshakeTimeout time.Duration
	DialTimeout      time.Duration
	IdleTimeout      time.Duration
	QueueDepth       int
	MaxConns         int
}

// Transport is a memberlist.NodeAwareTransport over mutual TLS 1.3. Create
// it with NewTransport and hand it to memberlist in Config.Transport.
type Transport struct {
	cfg       TransportConfig
	server    *tls.Config
	client    *tls.Config
	policy    peerPolicy
	book      *addressBook
	said      *announcements
	warns     *warnLimiter
	log       *slog.Logger
	ln        net.Listener
	advertise *net.TCPAddr
	localAddr *net.TCPAddr

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	sem      chan struct{}
	probeSem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	senders  map[string]*sender
	incoming map[net.Conn]struct{}
	// handshaking counts, per remote address, incoming connections whose
	// TLS handshake is still running.
	handshaking map[netip.Addr]int
}

// NewTransport validates cfg, starts listening and returns the transport.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	server, client, err := gossipTLS(cfg.ServerTLS, cfg.ClientTLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen for gossip on %s: %w", cfg.BindAddr, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	adv, err := advertiseAddr(cfg.AdvertiseAddr, bound)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		server:    server,
		client:    client,
		policy:    peerPolicy{trustDomain: cfg.TrustDomain, roles: cfg.Roles},
		book:      newAddressBook(),
		said:      newAnnouncements(cfg.Name),
		warns:     newWarnLimiter(),
		log:       cfg.Logger,
		ln:        ln,
		advertise: adv,
		packetCh:  make(chan *memberlist.Packet),
		streamCh:  make(chan net.Conn),
		sem:       make(chan struct{}, cfg.MaxConns),
		probeSem:  make(chan struct{}, maxProbes),
		ctx:       ctx,
		cancel:    cancel,
		senders:   make(map[string]*sender),
		incoming:  make(map[net.Conn]struct{}),

		handshaking: make(map[netip.Addr]int),
	}
	if !bound.IP.IsUnspecified() {
		// Dial from the address we listen on, so that peers (and
		// firewalls) see one address per node.
		t.localAddr = &net.TCPAddr{IP: bound.IP}
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// AdvertiseAddr returns the host:port other members dial to reach this node.
func (t *Transport) AdvertiseAddr() string { return t.advertise.String() }

// FinalAdvertiseAddr implements memberlist.Transport. An explicit ip from
// memberlist's config wins; otherwise the transport's advertise address is
// used.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.advertise.IP, t.advertise.Port, nil
	}
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
	}
	if v4 := parsed.To4(); v4 != nil {
		parsed = v4
	}
	return parsed, port, nil
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. Like UDP it is
// best effort: the packet is queued for the peer's connection and dropped if
// the queue is full or the peer cannot be reached or is not a.Name.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if len(b) > t.cfg.MaxPacketSize {
		return time.Time{}, fmt.Errorf("packet of %d bytes to %s exceeds the %d-byte limit", len(b), a.String(), t.cfg.MaxPacketSize)
	}
	t.noteOutgoing(b, 0)
	t.enqueue(a, append([]byte(nil), b...))
	return time.Now(), nil
}

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport. When a.Name
// is set, the peer's certificate must carry exactly that ID.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, id, err := t.dialKind(a, timeout, kindStream)
	if err != nil {
		return nil, err
	}
	return t.filterStream(conn, id), nil
}

// Shutdown implements memberlist.Transport: it closes the listener and every
// connection and waits for the transport's goroutines to end.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for c := range t.incoming {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("failed to close gossip listener %s: %w", t.ln.Addr(), err)
	}
	return nil
}
