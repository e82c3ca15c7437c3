package audit

import (
	"bytes"
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
// last keyed line, under a MAC of its own (the tag). It is updated after
// every append. A log that ends before the head it records lost lines from
// its tail, which the chain alone cannot show.
//
// The file has two fixed slots of headSlotLen bytes, written in turn in
// place (pwrite, fsync): an update never rewrites the slot that holds the
// previous head, so a write torn by a crash leaves the other slot valid,
// and no file is created or renamed per append. The newest valid slot is
// the head. A slot that is present but invalid is a torn write; then the
// log must hold at least one entry past the valid slot (the entry whose
// head was being written), or lines were cut.
//
// It lives next to the log (mode 0600) rather than in the sealed store, so
// an attacker who can delete both files and start an unkeyed log again is
// not caught by it; the upgrade of an unkeyed log is written to the log and
// to the daemon's log for that reason.

// headSuffix is appended to the log's path to name its head file.
const headSuffix = ".head"

// headSlotLen is the size of one slot: a JSON object padded with spaces and
// ending in a newline.
const headSlotLen = 256

// HeadPath returns the head file of the log at path.
func HeadPath(path string) string { return path + headSuffix }

type head struct {
	V   int    `json:"v"`
	Seq uint64 `json:"seq"`
	MAC string `json:"mac"`
	Tag string `json:"tag"`
	// torn is set when the other slot held a write that did not complete.
	torn bool
}

func headTag(key []byte, seq uint64, mac string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keyshare/audit-head/v1\x00"))
	m.Write([]byte(strconv.FormatUint(seq, 10)))
	m.Write([]byte{0})
	m.Write([]byte(mac))
	return hex.EncodeToString(m.Sum(nil))
}

func encodeSlot(key []byte, seq uint64, mac string) ([]byte, error) {
	b, err := json.Marshal(head{V: 1, Seq: seq, MAC: mac, Tag: headTag(key, seq, mac)})
	if err != nil || len(b) >= headSlotLen {
		return nil, fmt.Errorf("failed to encode audit head (%d bytes): %w", len(b), err)
	}
	slot := bytes.Repeat([]byte{' '}, headSlotLen)
	copy(slot, b)
	slot[headSlotLen-1] = '\n'
	return slot, nil
}

// decodeSlot returns the slot's head and whether it is valid.
func decodeSlot(key, slot []byte) (head, bool) {
	var h head
	if err := json.Unmarshal(bytes.TrimRight(slot, " \n\x00"), &h); err != nil || h.V != 1 {
		return head{}, false
	}
	return h, hmac.Equal([]byte(h.Tag), []byte(headTag(key, h.Seq, h.MAC)))
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
	b, err := io.ReadAll(io.LimitReader(f, 2*headSlotLen+1))
	if err != nil {
		return head{}, false, fmt.Errorf("failed to read audit head %s: %w", hp, err)
	}
	if len(b) != 2*headSlotLen {
		return head{}, false, fmt.Errorf("%w: audit head %s is %d bytes, want %d", ErrBroken, hp, len(b), 2*headSlotLen)
	}
	h0, ok0 := decodeSlot(key, b[:headSlotLen])
	h1, ok1 := decodeSlot(key, b[headSlotLen:])
	switch {
	case ok0 && ok1:
		if h1.Seq > h0.Seq {
			return h1, true, nil
		}
		return h0, true, nil
	case ok0:
		h0.torn = true
		return h0, true, nil
	case ok1:
		h1.torn = true
		return h1, true, nil
	}
	return head{}, false, fmt.Errorf("%w: audit head %s holds no head written with this holder's seal key", ErrBroken, hp)
}

// headWriter keeps the head file open and writes its slots in turn.
type headWriter struct {
	path string
	f    *os.File
}

// writeHead records (seq, mac) in the slot of seq's parity, and fsyncs. The
// first write creates the file, both slots at once, atomically (temp file,
// fsync, rename).
func (w *headWriter) write(key []byte, seq uint64, mac string) error {
	slot, err := encodeSlot(key, seq, mac)
	if err != nil {
		return err
	}
	hp := HeadPath(w.path)
	if w.f == nil {
		f, err := os.OpenFile(hp, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			if err := createHead(hp, slot); err != nil {
				return err
			}
			f, err = os.OpenFile(hp, os.O_RDWR, 0)
		}
		if err != nil {
			return fmt.Errorf("failed to open audit head %s: %w", hp, err)
		}
		w.f = f
	}
	if _, err := w.f.WriteAt(slot, int64(seq%2)*headSlotLen); err != nil {
		return fmt.Errorf("failed to write audit head %s: %w", hp, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("failed to fsync audit head %s: %w", hp, err)
	}
	return nil
}

func (w *headWriter) close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// createHead writes a new head file with slot in both places.
func createHead(hp string, slot []byte) error {
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
	if _, err := f.Write(append(bytes.Clone(slot), slot...)); err != nil {
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
		return fmt.Errorf("failed to create audit head %s: %w", hp, err)
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
	case h.torn && st.seq == h.Seq:
		return fmt.Errorf("%w: the newer slot of its head file %s is damaged and the log ends at the older one, seq %d: the last line was removed", ErrTruncated, HeadPath(path), h.Seq)
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
