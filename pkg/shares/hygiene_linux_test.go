package shares

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestZeroShares(t *testing.T) {
	_, all := split(t)
	ZeroShares(all)
	for _, s := range all {
		for _, c := range s.Value {
			if c != 0 {
				t.Fatalf("share %d not zeroed", s.Index)
			}
		}
	}
}

func TestDisableCoreDumps(t *testing.T) {
	if err := DisableCoreDumps(); err != nil {
		t.Fatal(err)
	}
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cur != 0 || r.Max != 0 {
		t.Fatalf("RLIMIT_CORE = %d/%d, want 0/0", r.Cur, r.Max)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Fatalf("dumpable = %d, %v; want 0", d, err)
	}
	// mlock is best effort: it either works or says how to fix it.
	b := make([]byte, 64)
	if err := Mlock(b); err != nil {
		t.Logf("mlock unavailable here: %v", err)
	} else {
		Munlock(b)
	}
}
