package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	kmsapi "k8s.io/kms/apis/v2"
	kmsservice "k8s.io/kms/pkg/service"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/transit"
)

// shutdownGrace bounds a graceful stop; in-flight calls past it are cut.
const shutdownGrace = 5 * time.Second

// NewVaultClient builds the pinned-CA transit client of c, connecting from
// vault.source_addr. Errors are config errors.
func NewVaultClient(c Config) (*transit.Client, error) {
	ca, err := os.ReadFile(c.Vault.CAFile)
	if err != nil {
		return nil, confload.Errorf(c.file, "vault.ca_file: %w", err)
	}
	o := transit.Options{Addrs: c.Vault.Addrs(), CACert: ca, ServerName: c.Vault.ServerName,
		SourceAddr: c.Vault.SourceAddr, Timeout: c.Vault.Timeout}
	if c.Vault.Auth == AuthCert {
		o.ClientCertFile, o.ClientKeyFile = c.Vault.CertFile, c.Vault.KeyFile
	}
	cl, err := transit.New(o)
	if err != nil {
		return nil, confload.Errorf(c.file, "vault: %w", err)
	}
	return cl, nil
}

// Daemon is a running plugin: the socket, the Vault client, the token
// keeper, the prober, the metrics server.
type Daemon struct {
	Service *Service
	Prober  *Prober
	Tokens  *Tokens
	Socket  *Socket
	Metrics *Metrics
	// MetricsAddr is the metrics server's address, once listening.
	MetricsAddr string

	cfg     Config
	log     *slog.Logger
	vault   *transit.Client
	grpc    *grpc.Server
	httpSrv *http.Server
	httpLn  net.Listener
}

// Build wires a daemon from c without starting anything but its listeners.
func Build(c Config, log *slog.Logger) (*Daemon, error) {
	vc, err := NewVaultClient(c)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	d := &Daemon{cfg: c, log: log, vault: vc, Metrics: m}
	d.Service = NewService(vc, c.Vault.Mount, c.Vault.Key, c.Status.MaxAge, log, m)
	host := c.Vault.HostLabel()
	var tokens *Tokens
	d.Prober = NewProber(d.Service, host, c.Status.Interval, c.Status.RetryInterval, 2*c.Vault.Timeout+time.Second,
		func() string {
			if p := tokens.Problem(); p != "" {
				return "no usable vault token: " + p
			}
			return ""
		})
	tokens = NewTokens(c.Vault.TokenFile, vc, host, c.Vault.TokenCheck, c.Vault.Timeout, log, m, d.Prober.Kick)
	if c.Vault.Auth == AuthCert {
		mount, role := c.Vault.CertMount, c.Vault.CertRole
		tokens.login = func(ctx context.Context) ([]byte, string, error) {
			tok, info, err := vc.Login(ctx, mount, role)
			if err != nil {
				return nil, "", fmt.Errorf("vault cert login (auth/%s, role %s) from %s: %w", mount, role, host, err)
			}
			return []byte(tok), info.Accessor, nil
		}
		tokens.source = "cert login " + role
	}
	d.Prober.onDenied = tokens.Invalidate
	d.Prober.preferActive = vc.PreferActive
	d.Tokens = tokens

	if c.MetricsListen != "" {
		ln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("failed to listen on %s (metrics_listen): %w", c.MetricsListen, err)
		}
		d.httpLn, d.MetricsAddr = ln, ln.Addr().String()
		d.httpSrv = &http.Server{Handler: d.httpHandler(reg), ReadHeaderTimeout: 5 * time.Second}
	}
	sock, err := ListenSocket(c.Socket.Path, c.Socket.Group)
	if err != nil {
		if d.httpLn != nil {
			_ = d.httpLn.Close()
		}
		return nil, err
	}
	d.Socket = sock
	d.grpc = grpc.NewServer(ServerOptions()...)
	kmsapi.RegisterKeyManagementServiceServer(d.grpc, kmsservice.NewGRPCService(c.Socket.Path, DefaultGRPCTimeout, d.Service))
	return d, nil
}

// grpcWindow is the fixed HTTP/2 flow-control window of the KMS socket, per
// stream and per connection: far above any KMS message (key_id and
// ciphertext are at most 1 KiB, a seed 32 bytes).
const grpcWindow = 1 << 20

// grpcWorkers is how many long-lived goroutines serve the socket's calls;
// a call that finds them all busy gets a goroutine of its own, as without
// workers.
const grpcWorkers = 4

// ServerOptions are the gRPC server options of the KMS socket.
//
// The windows are fixed: with gRPC's default dynamic window, the server
// answers every request's data with a BDP ping to the apiserver, which the
// apiserver's transport must read and acknowledge: two more wake-ups of
// each side per call, for a window that KMS messages never come near.
//
// Calls run on long-lived worker goroutines (gRPC's NumStreamWorkers,
// marked experimental by grpc-go) instead of a new goroutine each (which
// starts on a small stack and grows it through the HTTP client every time,
// the likely reason): 20-95 µs less at the p50 in A/B runs against the real
// Vault (BENCHMARKS.md).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(DefaultGRPCTimeout),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.InitialWindowSize(grpcWindow),
		grpc.InitialConnWindowSize(grpcWindow),
		grpc.NumStreamWorkers(grpcWorkers),
	}
}

// httpHandler serves /metrics, /healthz (the KMS health: 503 and the
// reason when not ok, for readiness) and /livez (the process answers).
func (d *Daemon) httpHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := d.Service.Healthy()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "%s\n", reason)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// Run serves until ctx ends, then stops gracefully and removes the socket.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.Tokens.Reload(ctx)
	d.Prober.Check(ctx) // Status is meaningful from the first call
	done := make(chan struct{}, 2)
	go func() { d.Tokens.Run(ctx); done <- struct{}{} }()
	go func() { d.Prober.Run(ctx); done <- struct{}{} }()
	if d.httpSrv != nil {
		go func() {
			if err := d.httpSrv.Serve(d.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.grpc.Serve(d.Socket) }()
	ok, reason := d.Service.Healthy()
	d.log.Info("kms plugin serving", "socket", d.Socket.Path(), "provider", d.cfg.ProviderName,
		"vault_nodes", d.cfg.Vault.Addrs(), "mount", d.cfg.Vault.Mount, "key", d.cfg.Vault.Key,
		"source_addr", d.cfg.Vault.SourceAddr, "metrics", d.MetricsAddr, "healthy", ok, "reason", reason)
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("kms socket %s: %w", d.Socket.Path(), err)
	}
	cancel()
	d.stop()
	<-done
	<-done
	d.log.Info("kms plugin stopped", "socket", d.Socket.Path())
	return err
}

func (d *Daemon) stop() {
	stopped := make(chan struct{})
	go func() { d.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		d.grpc.Stop()
		<-stopped
	}
	if err := d.Socket.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		d.log.Warn("failed to remove the socket", "err", err)
	}
	if d.httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.httpSrv.Shutdown(sctx)
		cancel()
	}
	d.vault.Close()
}
