package holder

import (
	"fmt"
	"log/slog"

	"github.com/keyshare/keyshare/internal/audit"
	"github.com/keyshare/keyshare/pkg/shares"
)

// OpenAudit opens the audit log with the chain key derived from the seal
// key, and says so in the log when it keyed an older, unkeyed chain.
func OpenAudit(c Config, key shares.SealKey, log *slog.Logger) (*audit.Log, error) {
	ck, err := audit.KeyFromSeal(key)
	if err != nil {
		return nil, fmt.Errorf("holder %s: %w", c.ID, err)
	}
	defer shares.Zero(ck)
	l, err := audit.Open(c.Audit.File, ck)
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
// of entries.
func VerifyAudit(c Config, path string) (int, error) {
	if path == "" {
		path = c.Audit.File
	}
	key, err := OpenSealKey(c)
	if err != nil {
		return 0, fmt.Errorf("config %s: %w", c.file, err)
	}
	defer key.Destroy()
	ck, err := audit.KeyFromSeal(key)
	if err != nil {
		return 0, err
	}
	defer shares.Zero(ck)
	return audit.Verify(path, ck)
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
