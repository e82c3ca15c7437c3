package gossip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/identity"
)

// Transport defaults. Each applies when the matching TransportConfig field
// is zero.
const (
	// DefaultMaxPacketSize bounds one incoming packet frame. memberlist keeps
	// its packets near UDPBufferSize (1400 bytes); anything near this limit
	// is hostile and closes the connection.
	DefaultMaxPacketSize = 64 << 10
	// DefaultHandshakeTimeout bounds the TLS handshake plus the kind byte,
	// and the reading of one packet frame once its header has arrived.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultDialTimeout bounds connecting to a peer for packets and probes.
	DefaultDialTimeout = 3 * time.Second
	// DefaultIdleTimeout closes a cached packet connection that carried
	// nothing for this long. Receivers wait twice as long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultQueueDepth is the number of packets queued per peer before new
	// ones are dropped, as a full UDP socket buffer would drop them.
	DefaultQueueDepth = 256
	// DefaultMaxConns bounds concurrent incoming connections still being
	// handshaken or carrying packets.
	DefaultMaxConns = 512
)

// DefaultRoles are the roles that form the gossip cluster.
var DefaultRoles = identity.GossipRoles

func (c *TransportConfig) defaults() error {
	if c.BindAddr == "" {
		return errors.New("gossip transport: BindAddr is required")
	}
	if c.TrustDomain.IsZero() {
		return errors.New("gossip transport: TrustDomain is required")
	}
	if len(c.Roles) == 0 {
		c.Roles = DefaultRoles
	}
	positiveOr(&c.MaxPacketSize, DefaultMaxPacketSize)
	positiveOr(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	positiveOr(&c.DialTimeout, DefaultDialTimeout)
	positiveOr(&c.IdleTimeout, DefaultIdleTimeout)
	positiveOr(&c.QueueDepth, DefaultQueueDepth)
	positiveOr(&c.MaxConns, DefaultMaxConns)
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
	return nil
}

// positiveOr sets *v to def unless it is positive.
func positiveOr[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// gossipTLS checks the caller's TLS configs and returns clones pinned to
// TLS 1.3 and the gossip ALPN protocol.
func gossipTLS(server, client *tls.Config) (*tls.Config, *tls.Config, error) {
	if server == nil || client == nil {
		return nil, nil, errors.New("gossip transport: ServerTLS and ClientTLS are both required")
	}
	customVerify := func(c *tls.Config) bool { return c.VerifyPeerCertificate != nil || c.VerifyConnection != nil }
	switch server.ClientAuth {
	case tls.RequireAndVerifyClientCert:
	case tls.RequireAnyClientCert:
		if !customVerify(server) {
			return nil, nil, errors.New("gossip transport: ServerTLS accepts any client certificate without verifying it; use tls.RequireAndVerifyClientCert")
		}
	default:
		return nil, nil, fmt.Errorf("gossip transport: ServerTLS.ClientAuth is %s, want RequireAndVerifyClientCert", server.ClientAuth)
	}
	if client.InsecureSkipVerify && !customVerify(client) {
		return nil, nil, errors.New("gossip transport: ClientTLS skips server verification without a VerifyPeerCertificate or VerifyConnection hook")
	}
	if len(client.Certificates) == 0 && client.GetClientCertificate == nil {
		return nil, nil, errors.New("gossip transport: ClientTLS has no client certificate")
	}
	s, c := server.Clone(), client.Clone()
	for _, cfg := range []*tls.Config{s, c} {
		pinGossip(cfg)
	}
	if get := s.GetConfigForClient; get != nil {
		// A per-handshake config (identity.Source serves one, to reload
		// certificates) replaces s entirely: pin it too, or the server
		// negotiates no ALPN and every member refuses every other.
		s.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cfg, err := get(hello)
			if cfg == nil || err != nil {
				return cfg, err
			}
			cfg = cfg.Clone()
			pinGossip(cfg)
			return cfg, nil
		}
	}
	return s, c, nil
}

// pinGossip pins cfg to TLS 1.3 and the gossip ALPN protocol.
func pinGossip(cfg *tls.Config) {
	cfg.MinVersion = tls.VersionTLS13
	cfg.MaxVersion = tls.VersionTLS13
	cfg.NextProtos = []string{alpnProtocol}
}

// advertiseAddr resolves the address to advertise, defaulting to bound.
func advertiseAddr(advertise string, bound *net.TCPAddr) (*net.TCPAddr, error) {
	if advertise == "" {
		if bound.IP.IsUnspecified() {
			return nil, fmt.Errorf("gossip transport: AdvertiseAddr is required when listening on %s", bound)
		}
		return bound, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve gossip advertise address %s: %w", advertise, err)
	}
	if addr.IP == nil || addr.IP.IsUnspecified() || addr.Port == 0 {
		return nil, fmt.Errorf("gossip advertise address %s must name a specific IP and port", advertise)
	}
	if v4 := addr.IP.To4(); v4 != nil {
		addr.IP = v4
	}
	return addr, nil
}
