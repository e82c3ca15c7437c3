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

// The holder and unsealer binaries are built once per test binary run, with
// -race, the first time a test asks for them.
var (
	binsOnce sync.Once
	binsDir  string
	bins     topology.Binaries
	binsErr  error
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
	binsOnce.Do(func() {
		binsDir, binsErr = os.MkdirTemp("", "keyshare-e2e-bin-")
		if binsErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		bins, binsErr = topology.BuildBinaries(ctx, binsDir, true)
		tb.Logf("timing: built holder and unsealer (-race) in %s", time.Since(start).Round(time.Millisecond))
	})
	if binsErr != nil {
		tb.Fatalf("no keyshare binaries: %v", binsErr)
	}
	return bins
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
