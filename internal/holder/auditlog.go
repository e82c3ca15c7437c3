package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/pkg/shares"
)

// OpenAudit opens the audit log with the chain key derived from the seal
// key, holds it to the high-water mark in the sealed store (a log whose
// tail was cut, with its head file, is refused), and says so in the log
// when it keyed an older, unkeyed chain.
func OpenAudit(c Config, key shares.SealKey, store *shares.Store, log *slog.Logger) (*audit.Log, error) {
	ck, err := audit.KeyFromSeal(key)
	if err != nil {
		return nil, fmt.Errorf("holder %s: %w", c.ID, err)
	}
	defer shares.Zero(ck)
	l, err := audit.OpenMarked(c.Audit.File, ck, store)
	if err != nil {
		return nil, err
	}
	if l.Upgraded > 0 {
		log.Warn("audit log upgraded: its chain is keyed from now on; the entries before the marker are only hash-chained",
			"file", c.Audit.File, "unkeyed_entries", l.Upgraded, "head", audit.HeadPath(c.Audit.File))
	}
	return l, nil
}

// VerifyAudit checks the audit log at path (the config's by default) with
// the chain key derived from the config's seal key, and returns the number
// of entries. The config's own log is also held to the high-water mark in
// the sealed store.
func VerifyAudit(c Config, path string) (int, error) {
	if path == "" {
		path = c.Audit.File
	}
	store, key, err := OpenStore(c)
	if err != nil {
		return 0, err
	}
	defer key.Destroy()
	ck, err := audit.KeyFromSeal(key)
	if err != nil {
		return 0, err
	}
	defer shares.Zero(ck)
	if path != c.Audit.File {
		return audit.Verify(path, ck)
	}
	want, err := store.AuditMark()
	if err != nil {
		return 0, err
	}
	return audit.VerifyMarked(path, ck, want)
}

// VerifyAuditReport checks the audit log at path (the config's when empty)
// and says how many entries it holds, for `holder audit verify`.
func VerifyAuditReport(c Config, path string) (string, error) {
	if path == "" {
		path = c.Audit.File
	}
	n, err := VerifyAudit(c, path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d entries, chain ok", path, n), nil
}

// ErrNotConfirmedReset is returned by ResetAuditMark without its
// confirmation flag.
var ErrNotConfirmedReset = errors.New("audit mark reset not confirmed")

// ResetAuditMark lowers the sealed high-water mark to the end of the audit
// log now in place, after an operator moved a damaged or cut log aside on
// purpose, and records that in the new log. It needs the seal key, so an
// attacker who cut the log cannot do it. Run it with the holder stopped.
func ResetAuditMark(c Config, confirm bool) (string, error) {
	store, key, err := OpenStore(c)
	if err != nil {
		return "", err
	}
	defer key.Destroy()
	old, err := store.AuditMark()
	if err != nil {
		return "", err
	}
	if !confirm {
		return "", fmt.Errorf("%w: the sealed store says audit log %s reached seq %d; resetting forgets that. "+
			"Keep the old log and its head as evidence, then rerun with --i-moved-the-old-log-aside", ErrNotConfirmedReset, c.Audit.File, old)
	}
	ck, err := audit.KeyFromSeal(key)
	if err != nil {
		return "", err
	}
	defer shares.Zero(ck)
	n, err := audit.Verify(c.Audit.File, ck)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("the audit log now in place does not verify, so the mark stays at %d: %w", old, err)
	}
	if err := store.ResetAuditMark(uint64(n)); err != nil {
		return "", err
	}
	l, err := audit.OpenMarked(c.Audit.File, ck, store)
	if err != nil {
		return "", err
	}
	err = errors.Join(l.Append(audit.Entry{Event: audit.EventMarkReset, Peer: "operator (holder audit reset-mark)", Decision: "ok",
		Detail: fmt.Sprintf("sealed high-water mark lowered from seq %d to %d: the log before this one was moved aside", old, n)}), l.Close())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("holder %s: audit mark reset from seq %d to %d; %s starts again from here", c.ID, old, n, c.Audit.File), nil
}
