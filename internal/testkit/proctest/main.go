package proctest

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Main is a test binary's TestMain for tests of the real binaries: it
// builds pkgs (see Build) into a temporary folder, hands use the binaries
// by package, runs the tests and exits with their code, the folder removed
// either way. A failed build exits 1 with the compiler's output.
func Main(m *testing.M, race bool, use func(bins map[string]string), pkgs ...string) {
	os.Exit(buildAndRun(m, race, use, pkgs))
}

func buildAndRun(m *testing.M, race bool, use func(bins map[string]string), pkgs []string) int {
	dir, err := os.MkdirTemp("", "keyshare-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err := Build(dir, race, pkgs...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	use(bins)
	return m.Run()
}

// WaitForErr is WaitFor for a condition that says why it does not hold
// yet: it polls cond every 50 ms until it returns nil, failing the test
// after bound with the last error cond returned.
func WaitForErr(tb testing.TB, bound time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s: %v", bound, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
