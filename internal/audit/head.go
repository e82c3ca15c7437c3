package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/keyshare/keyshare/pkg/shares"
)

// The head file, <log>.head, records the sequence number and MAC of the
// last keyed line, under a MAC of its own. It is rewritten atomically after
// every append. A log that ends before the head it records lost lines from
// its tail, which the chain alone cannot show.
//
// It lives next to the log (mode 0600) rather than in the sealed store, so
// an attacker who can delete both files and start an unkeyed log again is
// not caught by it; the upgrade of an unkeyed log is written to the log and
// to the daemon's log for that reason.

// headSuffix is appended to the log's path to name its head file.
const headSuffix = ".head"

// HeadPath returns the head file of the log at path.
func HeadPath(path string) string { return path + headSuffix }

type head struct {
	V   int    `json:"v"`
	Seq uint64 `json:"seq"`
	MAC string `json:"mac"`
	Tag string `json:"tag"`
}

func headTag(key []byte, seq uint64, mac string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keyshare/audit-head/v1\x00"))
	m.Write([]byte(strconv.FormatUint(seq, 10)))
	m.Write([]byte{0})
	m.Write([]byte(mac))
	return hex.EncodeToString(m.Sum(nil))
}

// readHead returns the head recorded for the log at path; ok is false when
// there is no head file.
func readHead(path string, key []byte) (h head, ok bool, err error) {
	hp := HeadPath(path)
	f, err := os.Open(hp)
	if errors.Is(err, os.ErrNotExist) {
		return head{}, false, nil
	}
	if err != nil {
		return head{}, false, fmt.Errorf("failed to open audit head %s: %w", hp, err)
	}
	defer f.Close()
	if err := checkMode(f, hp); err != nil {
		return head{}, false, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return head{}, false, fmt.Errorf("failed to read audit head %s: %w", hp, err)
	}
	if err := json.Unmarshal(b, &h); err != nil || h.V != 1 {
		return head{}, false, fmt.Errorf("%w: audit head %s is not a version 1 head file", ErrBroken, hp)
	}
	if !hmac.Equal([]byte(h.Tag), []byte(headTag(key, h.Seq, h.MAC))) {
		return head{}, false, fmt.Errorf("%w: audit head %s was not written with this holder's seal key", ErrBroken, hp)
	}
	return h, true, nil
}

// writeHead replaces the head file atomically: temp file, fsync, rename.
// The folder is not fsynced: after a crash the old head may come back, and
// a log longer than its head is accepted (its extra lines are keyed too).
func writeHead(path string, key []byte, seq uint64, mac string) error {
	b, err := json.Marshal(head{V: 1, Seq: seq, MAC: mac, Tag: headTag(key, seq, mac)})
	if err != nil {
		return fmt.Errorf("failed to encode audit head: %w", err)
	}
	hp := HeadPath(path)
	f, err := os.CreateTemp(filepath.Dir(hp), "."+filepath.Base(hp)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to create audit head temp file next to %s: %w", hp, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(fmt.Errorf("failed to chmod %s: %w", tmp, err))
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fail(fmt.Errorf("failed to write %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("failed to fsync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, hp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to replace audit head %s: %w", hp, err)
	}
	return nil
}

// checkHead compares the chain read from the log with its head file.
func checkHead(path string, st chainState, h head, ok bool) error {
	switch {
	case !ok && st.keyedAt != 0:
		return fmt.Errorf("%w: the log has keyed entries but its head file %s is missing: it was deleted, so lines may have been removed from the tail", ErrTruncated, HeadPath(path))
	case !ok:
		return nil
	case h.Seq > st.seq:
		return fmt.Errorf("%w: the log ends at seq %d but its head file records seq %d: %d lines were removed from the tail", ErrTruncated, st.seq, h.Seq, h.Seq-st.seq)
	case st.macAt != h.MAC:
		return fmt.Errorf("%w: the entry with seq %d differs from the one its head file records", ErrBroken, h.Seq)
	}
	return nil
}

// checkMode refuses a file that group or others may read or write, on the
// open descriptor (fstat), as the holder does for its other files.
func checkMode(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o066 != 0 {
		return fmt.Errorf("%s: %w (mode %#o): group or others may read or write it: run 'chmod 600 %s'", path, shares.ErrLoosePermissions, fi.Mode().Perm(), path)
	}
	return nil
}
