package sharerpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/keyshare/keyshare/pkg/transport/identity"
	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
)

// ClientOptions tune Dial. Zero values pick the Default* constants.
type ClientOptions struct {
	// CallTimeout bounds each call unless ctx has a sooner deadline.
	CallTimeout time.Duration
	// MaxMessageBytes bounds messages sent and received.
	MaxMessageBytes int
	// HandshakeTimeout bounds connecting and the TLS handshake.
	HandshakeTimeout time.Duration
	// LocalAddr, if valid, is the source address to connect from.
	LocalAddr netip.Addr
}

// Client calls the share service of one holder.
type Client struct {
	conn    *grpc.ClientConn
	rpc     sharepb.ShareServiceClient
	server  spiffeid.ID
	addr    string
	timeout time.Duration
}

// Dial returns a Client for the holder at addr (host:port) whose certificate
// must carry exactly the ID server. clientTLS is the caller's config from
// identity.Source.ClientConfig; Dial adds the check on server. The
// connection is made on the first call and re-made as needed.
func Dial(addr string, clientTLS *tls.Config, server spiffeid.ID, opts ClientOptions) (*Client, error) {
	switch {
	case clientTLS == nil:
		return nil, fmt.Errorf("sharerpc: no client TLS config to dial %s; use identity.Source.ClientConfig", addr)
	case clientTLS.InsecureSkipVerify && clientTLS.VerifyConnection == nil:
		return nil, fmt.Errorf("sharerpc: client TLS config for %s does not verify the server; use identity.Source.ClientConfig", addr)
	case server.IsZero():
		return nil, fmt.Errorf("sharerpc: no expected holder ID given for %s", addr)
	}
	setDefault(&opts.CallTimeout, DefaultCallTimeout)
	setDefault(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&opts.HandshakeTimeout, DefaultHandshakeTimeout)

	cfg := clientTLS.Clone()
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if verify != nil {
			if err := verify(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("holder at %s presented no certificate", addr)
		}
		id, _, err := identity.IDFromLeaf(cs.PeerCertificates[0])
		if err != nil {
			return fmt.Errorf("holder at %s: %w", addr, err)
		}
		if id != server {
			return fmt.Errorf("holder at %s is %s, want %s: check the address in the config", addr, id, server)
		}
		return nil
	}

	dialer := &net.Dialer{Timeout: opts.HandshakeTimeout}
	if opts.LocalAddr.IsValid() {
		dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(opts.LocalAddr, 0))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", a)
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(opts.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(opts.MaxMessageBytes),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: opts.HandshakeTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                2 * DefaultKeepaliveMinTime,
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("sharerpc: failed to set up client for holder %s at %s: %w", server, addr, err)
	}
	return &Client{conn: conn, rpc: sharepb.NewShareServiceClient(conn), server: server, addr: addr, timeout: opts.CallTimeout}, nil
}

// Health returns nil if the holder reports the share service as SERVING.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil {
		return c.wrap("health check", err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return c.wrap("health check", fmt.Errorf("share service is %s", st))
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Release asks the holder for its shares to unseal vaultNode. A refusal is
// returned as a wrapped *policy.Denial. The caller owns the returned values
// and should clear them after use.
func (c *Client) Release(ctx context.Context, vaultNode string, generation uint64) ([]Share, error) {
	return c.release(ctx, &sharepb.ReleaseRequest{VaultNode: vaultNode, Generation: generation})
}

// ReleaseForRekey asks the holder for its shares to feed Vault's rekey of
// vaultNode with the given nonce. Holders allow it to operator identities
// only, while the node itself reports that rekey in progress.
func (c *Client) ReleaseForRekey(ctx context.Context, vaultNode string, generation uint64, nonce string) ([]Share, error) {
	return c.release(ctx, &sharepb.ReleaseRequest{VaultNode: vaultNode, Generation: generation, RekeyNonce: nonce})
}

func (c *Client) release(ctx context.Context, req *sharepb.ReleaseRequest) ([]Share, error) {
	vaultNode := req.GetVaultNode()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.rpc.Release(ctx, req)
	if err != nil {
		return nil, c.wrap("release of shares for "+vaultNode, err)
	}
	defer zeroShares(resp.GetShares())
	shares, err := sharesFromPB(resp.GetShares())
	if err != nil {
		return nil, c.wrap("release of shares for "+vaultNode, fmt.Errorf("malformed answer: %w", err))
	}
	return shares, nil
}

// Manifest fetches the holder's manifest: the current generation's, with
// the staged and previous ones (Staged, Previous) when the holder holds them.
func (c *Client) Manifest(ctx context.Context) (Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.rpc.Manifest(ctx, &sharepb.ManifestRequest{})
	if err != nil {
		return Manifest{}, c.wrap("manifest", err)
	}
	m, err := manifestAnswerFromPB(resp)
	if err != nil {
		return Manifest{}, c.wrap("manifest", fmt.Errorf("malformed answer: %w", err))
	}
	return m, nil
}

// Stage sends a new generation to the holder. For a rekey, set
// req.RekeyNonce to the nonce of Vault's rekey: a holder that holds a
// committed generation refuses a stage without it.
func (c *Client) Stage(ctx context.Context, req StageRequest) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rpc.Stage(ctx, stageToPB(req))
	return c.wrap(fmt.Sprintf("stage of generation %d", req.Generation), err)
}

// Commit makes the staged generation current on the holder.
func (c *Client) Commit(ctx context.Context, generation uint64) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rpc.Commit(ctx, &sharepb.CommitRequest{Generation: generation})
	return c.wrap(fmt.Sprintf("commit of generation %d", generation), err)
}

// Abort drops the staged generation on the holder.
func (c *Client) Abort(ctx context.Context, generation uint64) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rpc.Abort(ctx, &sharepb.AbortRequest{Generation: generation})
	return c.wrap(fmt.Sprintf("abort of generation %d", generation), err)
}

// wrap names the holder and the call, and turns a denial status back into
// a *policy.Denial.
func (c *Client) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if d, ok := DenialFromError(err); ok {
		err = d
	}
	if status.Code(err) == codes.Canceled && !errors.Is(err, context.Canceled) {
		// The caller's context was cancelled: say so in a way errors.Is
		// sees, as a cancelled call in the same process would.
		err = fmt.Errorf("%w (%v)", context.Canceled, err)
	}
	return fmt.Errorf("%s by holder %s at %s: %w", what, c.server, c.addr, err)
}

// netipAddrPort converts a peer address to a netip.AddrPort.
func netipAddrPort(a net.Addr) (netip.AddrPort, error) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a == nil {
		return netip.AddrPort{}, errors.New("no address")
	}
	return netip.ParseAddrPort(a.String())
}
