package shares

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Mlock pins b in RAM so it is never written to swap. It is best effort: an
// unprivileged process may lack RLIMIT_MEMLOCK room, and the caller should
// log the error as a warning and go on.
func Mlock(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.Mlock(b); err != nil {
		return fmt.Errorf("failed to mlock %d bytes (raise LimitMEMLOCK or grant CAP_IPC_LOCK): %w", len(b), err)
	}
	return nil
}

// Munlock undoes Mlock. Zero the bytes first.
func Munlock(b []byte) {
	if len(b) > 0 {
		_ = unix.Munlock(b)
	}
}

// DisableCoreDumps sets RLIMIT_CORE to 0 and marks the process not dumpable,
// so that a crash or ptrace cannot copy share bytes out of memory.
func DisableCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("failed to set RLIMIT_CORE to 0: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to clear PR_SET_DUMPABLE: %w", err)
	}
	return nil
}
