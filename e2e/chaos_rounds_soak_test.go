//go:build e2e && soak

package e2e

// Rounds of the chaos tests under the soak build tag, `make soak` (see
// chaos_test.go).
const (
	chaosRounds     = 200
	chaosInitRounds = 40
)
