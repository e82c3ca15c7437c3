package shares

import (
	"fmt"
	"runtime"
	"unsafe"

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

// MlockAvailable locks and unlocks one page, to tell at start whether
// share buffers can be kept out of swap. Daemons report an error once and
// go on: LockedBytes then hands out ordinary memory.
func MlockAvailable() error {
	b := make([]byte, 2*pageSize)
	p := pageAligned(b, pageSize)
	if err := unix.Mlock(p); err != nil {
		return fmt.Errorf("mlock is not possible (raise LimitMEMLOCK or grant CAP_IPC_LOCK): %w", err)
	}
	_ = unix.Munlock(p)
	return nil
}

var pageSize = unix.Getpagesize()

// pageAligned returns the n bytes of b that start at its first page
// boundary; b must be at least n + one page long.
func pageAligned(b []byte, n int) []byte {
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(pageSize)); r != 0 {
		off = pageSize - r
	}
	return b[off : off+n : off+n]
}

// LockedBytes returns n zeroed bytes on pages of their own, locked in RAM
// when the OS allows (see MlockAvailable), for share buffers. The pages are
// unlocked when the garbage collector frees them; zero the bytes before
// dropping them, as for any share buffer.
func LockedBytes(n int) []byte {
	if n <= 0 {
		return nil
	}
	size := (n + pageSize - 1) / pageSize * pageSize
	raw := make([]byte, size+pageSize)
	p := pageAligned(raw, size)
	if unix.Mlock(p) != nil {
		return p[:n:n]
	}
	addr := uintptr(unsafe.Pointer(&p[0]))
	runtime.AddCleanup(&raw[0], func(a uintptr) {
		_, _, _ = unix.Syscall(unix.SYS_MUNLOCK, a, uintptr(size), 0)
	}, addr)
	return p[:n:n]
}
