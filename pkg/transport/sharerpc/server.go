package sharerpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/sharerpc/sharepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// Defaults for ServerOptions and ClientOptions.
const (
	// DefaultMaxMessageBytes bounds every message in either direction. A
	// full Stage of 255 shares and their digests fits well within it.
	DefaultMaxMessageBytes = 64 << 10
	// DefaultHandshakeTimeout bounds the TLS handshake of a new connection.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultCallTimeout bounds each call, on the server and the client.
	DefaultCallTimeout = 10 * time.Second
	// DefaultMaxConcurrentStreams bounds the calls in flight on one
	// connection.
	DefaultMaxConcurrentStreams = 16
	// DefaultMaxConnectionIdle closes connections idle that long.
	DefaultMaxConnectionIdle = 5 * time.Minute
	// DefaultKeepaliveMinTime is the shortest client keepalive interval the
	// server tolerates; clients pinging more often are disconnected.
	DefaultKeepaliveMinTime = 15 * time.Second
)

// ServiceName is the gRPC service name, also used for its health status.
const ServiceName = "keyshare.share.v1.ShareService"

// ServerOptions configure NewServer. TLS and Handler are required; zero
// values of the rest pick the Default* constants.
type ServerOptions struct {
	// TLS is the holder's server config, from identity.Source.ServerConfig.
	TLS *tls.Config
	// Handler serves the calls.
	Handler Handler
	// Logger receives internal errors and panics. Nil discards.
	Logger               *slog.Logger
	MaxMessageBytes      int
	HandshakeTimeout     time.Duration
	CallTimeout          time.Duration
	MaxConcurrentStreams uint32
	MaxConnectionIdle    time.Duration
	// MaxConnsPerSource and MaxHandshakesPerSource cap what one source
	// address may hold (see connlimit.go).
	MaxConnsPerSource      int
	MaxHandshakesPerSource int
}

// Server is the share service and the standard gRPC health service on one
// gRPC server.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	log    *slog.Logger
	conns  *sourceCounter
}

// NewServer builds a Server. It does not listen; call Serve.
func NewServer(opts ServerOptions) (*Server, error) {
	switch {
	case opts.TLS == nil:
		return nil, errors.New("sharerpc: server TLS config is not set; use identity.Source.ServerConfig")
	case opts.TLS.ClientAuth != tls.RequireAnyClientCert && opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert:
		return nil, errors.New("sharerpc: server TLS config does not require client certificates; use identity.Source.ServerConfig")
	case opts.Handler == nil:
		return nil, errors.New("sharerpc: handler is not set")
	}
	setDefault(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&opts.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&opts.CallTimeout, DefaultCallTimeout)
	setDefault(&opts.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	setDefault(&opts.MaxConnectionIdle, DefaultMaxConnectionIdle)
	setDefault(&opts.MaxConnsPerSource, DefaultMaxConnsPerSource)
	setDefault(&opts.MaxHandshakesPerSource, DefaultMaxHandshakesPerSource)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{health: health.NewServer(), log: log, conns: newSourceCounter(opts.MaxConnsPerSource)}
	creds := &limitHandshakes{TransportCredentials: credentials.NewTLS(opts.TLS), hs: newSourceCounter(opts.MaxHandshakesPerSource)}
	s.grpc = grpc.NewServer(
		grpc.Creds(creds),
		grpc.ForceServerCodecV2(zeroingCodec{}),
		// No write buffer: frames go straight to TLS, which encrypts them in
		// place, so released shares are not left in a buffer of gRPC's.
		grpc.WriteBufferSize(0),
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.MaxSendMsgSize(opts.MaxMessageBytes),
		grpc.MaxHeaderListSize(16<<10),
		grpc.ConnectionTimeout(opts.HandshakeTimeout),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             DefaultKeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: opts.MaxConnectionIdle,
			Time:              time.Minute,
			Timeout:           20 * time.Second,
		}),
		grpc.ChainUnaryInterceptor(refuseHoldersUnary, s.recoverPanics, deadline(opts.CallTimeout)),
		grpc.ChainStreamInterceptor(refuseHoldersStream),
	)
	sharepb.RegisterShareServiceServer(s.grpc, &service{h: opts.Handler, log: log})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(&limitListener{Listener: lis, conns: s.conns}); err != nil {
		return fmt.Errorf("sharerpc: serving on %s: %w", lis.Addr(), err)
	}
	return nil
}

// SetServing sets the health status reported for the share service, for
// example NOT_SERVING while the holder has no generation.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(ServiceName, st)
}

// GracefulStop stops accepting connections and waits for calls in flight,
// at most until ctx is done, after which it closes everything.
func (s *Server) GracefulStop(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// Stop closes all connections and listeners at once.
func (s *Server) Stop() { s.grpc.Stop() }

// deadline bounds every call by timeout, or by the client's deadline if it
// is sooner.
func deadline(timeout time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return next(ctx, req)
	}
}

// recoverPanics turns a panic in a handler into Internal. The panic value
// is not logged: it might hold share bytes.
func (s *Server) recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("share service handler panicked", "method", info.FullMethod)
			resp, err = nil, statusInternal()
		}
	}()
	return next(ctx, req)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
