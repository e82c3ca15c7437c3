package proctest

import (
	"fmt"
	"os"
	"testing"
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
