//go:build e2e

package e2e

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

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
