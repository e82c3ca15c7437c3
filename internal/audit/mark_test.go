package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyshare/keyshare/internal/testkit/proctest"
)

// memMark is a Mark in memory: what the holder's sealed store keeps.
type memMark struct {
	mu  sync.Mutex
	seq uint64
}

func (m *memMark) AuditMark() (uint64, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.seq, nil }
func (m *memMark) SetAuditMark(seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq = max(m.seq, seq)
	return nil
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for range n {
		if err := l.Append(Entry{Event: EventRelease, Peer: "spiffe://ks.test/unsealer/u1", Target: "vault-1", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSealedMarkCatchesRolledBackTail: the log and its head file are put
// back as they were a few entries ago (or deleted), which the head file
// alone cannot show: an older head is validly tagged, and a missing log is
// a new one. Open accepted every case before the sealed mark; OpenMarked
// and VerifyMarked refuse them with ErrTruncated, naming the file, both
// seqs and what to do.
func TestSealedMarkCatchesRolledBackTail(t *testing.T) {
	type snapshot struct{ log, head []byte }
	for _, tc := range []struct {
		name string
		undo func(t *testing.T, p string, old snapshot)
	}{
		{name: "fail/log-and-head-put-back", undo: func(t *testing.T, p string, old snapshot) {
			writeFile(t, p, old.log)
			writeFile(t, HeadPath(p), old.head)
		}},
		{name: "fail/log-and-head-deleted", undo: func(t *testing.T, p string, _ snapshot) {
			if err := errors.Join(os.Remove(p), os.Remove(HeadPath(p))); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "fail/log-emptied-head-deleted", undo: func(t *testing.T, p string, _ snapshot) {
			writeFile(t, p, nil)
			if err := os.Remove(HeadPath(p)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			m := &memMark{}
			l, err := OpenMarked(p, testKey, m)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 3)
			if err := l.Close(); err != nil { // flushes the head and the mark
				t.Fatal(err)
			}
			old := snapshot{log: readFile(t, p), head: readFile(t, HeadPath(p))}
			if l, err = OpenMarked(p, testKey, m); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 2)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := m.AuditMark(); got != 5 {
				t.Fatalf("sealed mark = %d after 5 entries", got)
			}
			tc.undo(t, p, old)

			// What the head file alone said: nothing wrong.
			if l, err := Open(p, testKey); err != nil {
				t.Fatalf("the undo is not one the head file misses: %v", err)
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = OpenMarked(p, testKey, m)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("OpenMarked = %v; want ErrTruncated", err)
			}
			for _, w := range []string{p, "seq 5", "reset-mark"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := VerifyMarked(p, testKey, 5); !errors.Is(err, ErrTruncated) {
				t.Fatalf("VerifyMarked = %v; want ErrTruncated", err)
			}
		})
	}
}

// TestSealedMarkFollowsAppends: the mark follows each append (behind the
// head, off the append path) and is never ahead of the log, so a log that
// was not cut always opens.
func TestSealedMarkFollowsAppends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	m := &memMark{}
	l, err := OpenMarked(p, testKey, m)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 5; i++ {
		appendN(t, l, 1)
		proctest.WaitForErr(t, 10*time.Second, fmt.Sprintf("the mark to reach entry %d", i), func() error {
			got, _ := m.AuditMark()
			if got > uint64(i) {
				t.Fatalf("mark %d is ahead of the log at %d", got, i)
			}
			if got != uint64(i) {
				return fmt.Errorf("mark stuck at %d; log at %d", got, i)
			}
			return nil
		})
	}
	if n, err := VerifyMarked(p, testKey, 5); err != nil || n != 5 {
		t.Fatalf("VerifyMarked = %d, %v", n, err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
