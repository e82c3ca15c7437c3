package shares

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// lockedKB returns the "Locked:" figure of the mapping that holds b, from
// /proc/self/smaps (mlock splits a mapping, so it is b's pages alone).
func lockedKB(t *testing.T, b []byte) int {
	t.Helper()
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && l <= addr && addr < h
			continue
		}
		if in && strings.HasPrefix(line, "Locked:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return 0
}

// TestOpenedSharesLocked: the shares of an opened bundle sit on locked
// pages where the OS allows mlock. Before, they were ordinary heap bytes.
func TestOpenedSharesLocked(t *testing.T) {
	if err := MlockAvailable(); err != nil {
		t.Skipf("mlock not possible here, so nothing to check: %v", err)
	}
	_, all := split(t)
	key := rawKeyT(t)
	b := bundleFor(t, "spiffe://ks.test/holder/a", 1, all, []uint8{1, 2})
	data, err := Seal(key, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, data, Expect{HolderID: b.HolderID, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Destroy()
	for _, s := range got.Shares {
		if kb := lockedKB(t, s.Value); kb == 0 {
			t.Fatalf("share %d is not on a locked page", s.Index)
		}
	}
	if !bytes.Equal(got.Shares[0].Value, all[0].Value) {
		t.Fatal("share 1 differs after the round trip")
	}
}
