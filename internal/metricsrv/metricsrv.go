// Package metricsrv serves a daemon's Prometheus metrics and a liveness
// endpoint over plain HTTP (bind it to loopback or a management network).
package metricsrv

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Serve listens on addr and serves /metrics from g, /healthz, and any extra
// read-only routes (path to handler), in the background. Shut the returned
// server down to stop.
func Serve(addr string, g prometheus.Gatherer, log *slog.Logger, extra map[string]http.Handler) (*http.Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s (metrics_listen): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	for path, h := range extra {
		mux.Handle(path, h)
	}
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// The bound address, which differs from addr when its port is 0.
	log.Info("metrics listening", "metrics_listen", lis.Addr().String())
	go func() {
		if err := s.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}
