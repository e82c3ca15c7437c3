//go:build costs

package bench

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(coordinatorSpecEnv); spec != "" {
		// Re-executed as the coordinator under measurement.
		if err := runCoordinator(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	printTable()
	os.Exit(code)
}
