//go:build e2e && !soak

package e2e

// Rounds of the chaos tests in `make test` (see chaos_test.go).
const (
	chaosRounds     = 30
	chaosInitRounds = 8
)
