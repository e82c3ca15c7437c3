package holder

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyshare/keyshare/internal/audit"
)

// auditedConfig is holder a's config with its store, seal key (made here)
// and audit log in a new temporary directory.
func auditedConfig(tb testing.TB) Config {
	tb.Helper()
	dir := tb.TempDir()
	c := Config{ID: "spiffe://ks.test/holder/a",
		Store: StoreConfig{Dir: filepath.Join(dir, "store"), SealKeyFile: filepath.Join(dir, "seal.key")},
		Audit: AuditConfig{File: filepath.Join(dir, "audit.log")}}
	if err := Keygen(c.Store.SealKeyFile); err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestAuditTailCutCaughtBySealedStore: the holder's audit log and its head
// file are put back as they were two entries ago. The sealed store's
// high-water mark catches it: the holder does not open the log, status and
// 'holder audit verify' report it, and only an operator with the seal key
// can start again ('holder audit reset-mark'), which the new log records.
func TestAuditTailCutCaughtBySealedStore(t *testing.T) {
	c := auditedConfig(t)
	appendN := func(n int) {
		t.Helper()
		store, key, err := OpenStore(c)
		if err != nil {
			t.Fatal(err)
		}
		defer key.Destroy()
		l, err := OpenAudit(c, key, store, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := l.Append(audit.Entry{Event: audit.EventRelease, Peer: "spiffe://ks.test/unsealer/u1", Decision: "allow"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendN(3)
	saved := map[string][]byte{}
	for _, p := range []string{c.Audit.File, audit.HeadPath(c.Audit.File)} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	appendN(2)
	for p, b := range saved {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	store, key, err := OpenStore(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenAudit(c, key, store, slog.New(slog.DiscardHandler))
	key.Destroy()
	if !errors.Is(err, audit.ErrTruncated) || !strings.Contains(err.Error(), "seq 3 but the holder's sealed store records seq 5") {
		t.Fatalf("OpenAudit = %v; want ErrTruncated naming both seqs", err)
	}
	if _, err := VerifyAudit(c, ""); !errors.Is(err, audit.ErrTruncated) {
		t.Fatalf("VerifyAudit = %v; want ErrTruncated", err)
	}
	if r := Status(c); r.Healthy() || !strings.Contains(r.AuditError, "truncated") {
		t.Fatalf("status: healthy=%v audit error %q", r.Healthy(), r.AuditError)
	}

	// The operator moves the cut log aside and resets the mark.
	if _, err := ResetAuditMark(c, false); !errors.Is(err, ErrNotConfirmedReset) {
		t.Fatalf("reset without confirmation: %v", err)
	}
	for p := range saved {
		if err := os.Rename(p, p+".evidence"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ResetAuditMark(c, true); err != nil {
		t.Fatal(err)
	}
	if n, err := VerifyAudit(c, ""); err != nil || n != 1 {
		t.Fatalf("after reset: VerifyAudit = %d, %v; want the one reset entry", n, err)
	}
	appendN(1)
}
