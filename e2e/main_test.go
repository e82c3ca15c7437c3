//go:build e2e

package e2e

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/e2e/harness"
	"github.com/keyshare/keyshare/e2e/topology"
)

// The holder, unsealer and kmsplugin binaries are built once per test
// binary run, with -race, into binsDir the first time a test asks for them.
var (
	binsDir      string
	keyshareBins builtOnce[topology.Binaries]
	kmsBin       builtOnce[string]
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

// requireBinaries builds cmd/holder and cmd/unsealer (once) and fails the
// test if that fails.
func requireBinaries(tb testing.TB) topology.Binaries {
	tb.Helper()
	return keyshareBins.get(tb, "holder and unsealer (-race)", 15*time.Minute, func(ctx context.Context) (topology.Binaries, error) {
		dir, err := os.MkdirTemp("", "keyshare-e2e-bin-")
		if err != nil {
			return topology.Binaries{}, err
		}
		binsDir = dir
		return topology.BuildBinaries(ctx, binsDir, true)
	})
}

// requireKMSPlugin builds cmd/kmsplugin (once, -race) next to the other
// binaries.
func requireKMSPlugin(tb testing.TB) string {
	tb.Helper()
	requireBinaries(tb)
	return kmsBin.get(tb, "kmsplugin (-race)", 10*time.Minute, func(ctx context.Context) (string, error) {
		return topology.BuildKMSPlugin(ctx, binsDir, true)
	})
}

// builtOnce is a build made once per test binary run, the first time a
// test asks for it; every later test gets the same result.
type builtOnce[T any] struct {
	once sync.Once
	v    T
	err  error
}

// get runs build the first time (bounded by timeout, its duration logged)
// and fails tb if the build failed.
func (b *builtOnce[T]) get(tb testing.TB, what string, timeout time.Duration, build func(context.Context) (T, error)) T {
	tb.Helper()
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		b.v, b.err = build(ctx)
		tb.Logf("timing: built %s in %s", what, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		tb.Fatalf("no %s: %v", what, b.err)
	}
	return b.v
}

// startTopology makes and starts a topology from opts, filling in what
// every test gives the same way (a temporary folder, the Vault and keyshare
// binaries, the test's log). The cleanup dumps every log tail if the test
// failed and stops every process.
func startTopology(t *testing.T, opts topology.Options) *topology.Topology {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.VaultBinary == "" {
		opts.VaultBinary = harness.RequireVaultBinary(t)
	}
	if opts.Binaries == (topology.Binaries{}) {
		opts.Binaries = requireBinaries(t)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	topo, err := topology.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			topo.DumpLogs(t.Logf, 40)
		}
		if err := topo.Close(); err != nil {
			t.Errorf("failed to stop the topology: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := topo.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return topo
}
