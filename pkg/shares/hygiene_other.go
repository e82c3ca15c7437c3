//go:build !linux

package shares

import "errors"

var errUnsupported = errors.New("not supported on this platform")

// Mlock is not available on this platform; it always returns an error.
func Mlock(b []byte) error { return errUnsupported }

// Munlock does nothing on this platform.
func Munlock(b []byte) {}

// DisableCoreDumps is not available on this platform.
func DisableCoreDumps() error { return errUnsupported }

// MlockAvailable reports that mlock is not available on this platform.
func MlockAvailable() error { return errUnsupported }

// LockedBytes returns n zeroed bytes; they cannot be locked on this
// platform.
func LockedBytes(n int) []byte { return make([]byte, n) }
