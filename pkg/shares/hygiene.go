package shares

import "fmt"

// Zero overwrites b with zeros. Use it on every buffer that held share or
// key bytes once it is no longer needed.
func Zero(b []byte) {
	clear(b)
}

// ZeroShares zeroes the bytes of every share.
func ZeroShares(ss []Share) {
	for i := range ss {
		Zero(ss[i].Value)
	}
}

// HardenProcess turns off core dumps (RLIMIT_CORE 0, not dumpable) and
// checks that share buffers can be locked in RAM. It returns one error per
// protection that is missing, for the caller to report once, at start; the
// process goes on without it. Every binary that can hold shares calls it
// first thing: holder and unsealer.
func HardenProcess() []error {
	var missing []error
	if err := DisableCoreDumps(); err != nil {
		missing = append(missing, fmt.Errorf("core dumps stay enabled: %w", err))
	}
	if err := MlockAvailable(); err != nil {
		missing = append(missing, fmt.Errorf("share buffers may be swapped out: %w", err))
	}
	return missing
}
