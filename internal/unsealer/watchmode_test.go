package unsealer_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyshare/keyshare/internal/coordinator"
	"github.com/keyshare/keyshare/internal/testkit/rig"
	"github.com/keyshare/keyshare/internal/unsealer"
	"github.com/keyshare/keyshare/internal/vaultnode"
)

// TestStatusShowsWatchMode: `unsealer status` asks the running
// coordinator's metrics how each node is watched, and prints it.
func TestStatusShowsWatchMode(t *testing.T) {
	r := rig.New(t, addrs)
	m := coordinator.NewMetrics()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.89:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := unsealer.WatchModes(ctx, ln.Addr().String()); err != nil {
		t.Fatalf("metrics without a watched node: %v", err)
	}
	c, err := coordinator.New([]coordinator.Node{{Name: "vault-1", Vault: r.Vault}}, r.Holders, coordinator.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = c.Run(cctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	var modes map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for modes["vault-1"] != coordinator.ModeHeld {
		if time.Now().After(deadline) {
			t.Fatalf("watch modes %v after 20s, want vault-1 held", modes)
		}
		time.Sleep(20 * time.Millisecond)
		if modes, err = unsealer.WatchModes(ctx, ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	rep := unsealer.Status(ctx, []*vaultnode.Node{r.Vault}, r.Holders)
	rep.SetWatchModes(modes)
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "WATCHED") || !strings.Contains(out.String(), "held") {
		t.Fatalf("status table lacks the watch mode:\n%s", out.String())
	}
	if _, err := unsealer.WatchModes(ctx, "127.0.0.89:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.89:1") {
		t.Fatalf("no running unsealer: err = %v, want one naming the address", err)
	}
}
